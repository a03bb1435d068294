// Package web embeds the built web client.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built client (index.html and assets/); it holds only .keep when the client was not built.
func Files() fs.FS { f, _ := fs.Sub(dist, "dist"); return f }
