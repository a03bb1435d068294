package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/push"
)

// Notifications (docs/api.md, "Notifications"): Web Push subscriptions, the
// VAPID key, mute per conversation and the user's notification settings.

func (a *API) pushOff(c *gin.Context) bool {
	if a.push == nil {
		writeErr(c, apperr.New(apperr.NotFound, "push notifications are not enabled on this server"))
		return true
	}
	return false
}

func (a *API) vapidKey(c *gin.Context) {
	if a.pushOff(c) {
		return
	}
	k, err := a.push.PublicKey()
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, k)
}

func (a *API) subscribePush(c *gin.Context) {
	if a.pushOff(c) {
		return
	}
	var in struct {
		Endpoint string                `json:"endpoint"`
		Keys     push.SubscriptionKeys `json:"keys"`
		// expirationTime is part of a browser's PushSubscription JSON;
		// accepted and ignored (the push service says when it is gone).
		ExpirationTime any `json:"expirationTime"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	sub, err := a.push.Subscribe(c.Request.Context(), c.GetString("user_id"), in.Endpoint, in.Keys)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, sub)
}

// unsubscribePush takes the subscription's id in the path, or its endpoint
// in the body of DELETE /push/subscriptions (what a service worker has).
func (a *API) unsubscribePush(c *gin.Context) {
	if a.pushOff(c) {
		return
	}
	key := c.Param("id")
	if key == "" {
		var in struct {
			Endpoint string `json:"endpoint"`
		}
		if err := bind(c, &in); err != nil {
			a.fail(c, err)
			return
		}
		key = in.Endpoint
	}
	if err := a.push.Unsubscribe(c.Request.Context(), c.GetString("user_id"), key); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *API) setMute(c *gin.Context) {
	var in struct {
		Mute *string `json:"mute"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Mute == nil {
		a.fail(c, apperr.OnField(apperr.InvalidRequest, "mute", "mute is required: off, 1h, 8h, 1w or always"))
		return
	}
	r, err := a.msgs.SetMute(c.Request.Context(), c.GetString("user_id"), c.Param("id"), *in.Mute)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

func (a *API) notifySettings(c *gin.Context) {
	st, err := a.msgs.Settings(c.Request.Context(), c.GetString("user_id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (a *API) updateNotifySettings(c *gin.Context) {
	var in messaging.NotifyChange
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	st, err := a.msgs.UpdateSettings(c.Request.Context(), c.GetString("user_id"), in)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}
