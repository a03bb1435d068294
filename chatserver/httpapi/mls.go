package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/messaging"
)

// The MLS Delivery Service routes (docs/api.md, "End-to-end encrypted
// conversations"). A signed-in session acts for any of its user's devices:
// there is no per-device credential, and every route checks that the device
// named is the caller's own.

func (a *API) mlsRoutes(authed *gin.RouterGroup) {
	authed.POST("/devices", a.registerDevice)
	authed.DELETE("/devices/:id", a.deleteDevice)
	authed.GET("/users/:id/devices", a.userDevices)
	authed.POST("/devices/:id/keypackages", a.uploadKeyPackages)
	authed.GET("/devices/:id/keypackages", a.keyPackageCount)
	authed.GET("/devices/:id/welcomes", a.welcomes)
	authed.DELETE("/devices/:id/welcomes/:conversationId", a.deleteWelcome)
	authed.POST("/conversations/:id/mls/keypackages", a.claimKeyPackages)
	authed.POST("/conversations/:id/mls/commit", a.commit)
}

// mlsBodyRoutes are the POST routes (gin's full paths) whose bodies may reach
// messaging.MLSBodyLimit: KeyPackage uploads and commits.
var mlsBodyRoutes = map[string]bool{
	"/api/v1/devices/:id/keypackages":      true,
	"/api/v1/conversations/:id/mls/commit": true,
}

func (a *API) registerDevice(c *gin.Context) {
	var in struct {
		Name         string `json:"name"`
		SignatureKey string `json:"signatureKey"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	d, err := a.msgs.RegisterDevice(c.Request.Context(), c.GetString("user_id"), in.Name, in.SignatureKey)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, d)
}

func (a *API) deleteDevice(c *gin.Context) {
	if err := a.msgs.DeleteDevice(c.Request.Context(), c.GetString("user_id"), c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) userDevices(c *gin.Context) {
	ds, err := a.msgs.UserDevices(c.Request.Context(), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"devices": ds})
}

func (a *API) uploadKeyPackages(c *gin.Context) {
	var in struct {
		KeyPackages []string `json:"keyPackages"`
		LastResort  string   `json:"lastResort"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	n, err := a.msgs.UploadKeyPackages(c.Request.Context(), c.GetString("user_id"), c.Param("id"),
		messaging.KeyPackageUpload{KeyPackages: in.KeyPackages, LastResort: in.LastResort})
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"count": n})
}

func (a *API) keyPackageCount(c *gin.Context) {
	n, last, err := a.msgs.KeyPackageCount(c.Request.Context(), c.GetString("user_id"), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"count": n, "lastResort": last})
}

func (a *API) claimKeyPackages(c *gin.Context) {
	var in struct {
		Users []string `json:"users"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	got, missing, err := a.msgs.ClaimKeyPackages(c.Request.Context(), c.GetString("user_id"), c.Param("id"), in.Users)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"keyPackages": got, "missing": missing})
}

func (a *API) commit(c *gin.Context) {
	var in struct {
		DeviceID string   `json:"deviceId"`
		Commit   string   `json:"commit"`
		Welcome  string   `json:"welcome"`
		Add      []string `json:"add"`
		Remove   []string `json:"remove"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	res, err := a.msgs.Commit(c.Request.Context(), c.GetString("user_id"), c.Param("id"), messaging.CommitRequest{
		DeviceID: in.DeviceID, Commit: in.Commit, Welcome: in.Welcome, Add: in.Add, Remove: in.Remove})
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (a *API) welcomes(c *gin.Context) {
	ws, err := a.msgs.Welcomes(c.Request.Context(), c.GetString("user_id"), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"welcomes": ws})
}

func (a *API) deleteWelcome(c *gin.Context) {
	if err := a.msgs.DeleteWelcome(c.Request.Context(), c.GetString("user_id"), c.Param("id"), c.Param("conversationId")); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
