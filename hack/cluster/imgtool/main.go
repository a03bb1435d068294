// Command imgtool writes a single-layer OCI image archive from files on this
// machine, with the standard library only (no Docker, no registry), for
// `ctr images import` on the make e2e-cluster node (hack/cluster).
//
//	imgtool -name parley/chatserver:dev -entrypoint /chatserver -user 65532:65532 \
//	        -add bin/cluster/chatserver=/chatserver -o chatserver.tar
//
// The layer holds the -add files (parent folders created), a /tmp with mode
// 1777 and an /etc/passwd and /etc/group naming root, nobody and the -user
// uid. Timestamps are the epoch, so the same inputs give the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

type adds []string

func (a *adds) String() string     { return strings.Join(*a, ",") }
func (a *adds) Set(v string) error { *a = append(*a, v); return nil }

// normalize spells a reference the way containerd's CRI looks it up: a pod's
// "parley/chatserver:dev" is found only as "docker.io/parley/chatserver:dev";
// an image stored under the short name is missing to the kubelet, and the CRI
// then tries to pull it (a DNS lookup of registry-1.docker.io).
func normalize(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	switch {
	case !ok:
		return "docker.io/library/" + ref
	case strings.ContainsAny(first, ".:") || first == "localhost":
		return ref
	}
	return "docker.io/" + ref
}

func digest(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

func main() {
	var files, env adds
	name := flag.String("name", "", "image reference, e.g. parley/chatserver:dev")
	out := flag.String("o", "image.tar", "output archive")
	entry := flag.String("entrypoint", "", "entrypoint, words separated by spaces")
	user := flag.String("user", "", "uid:gid the image runs as (also written to /etc/passwd)")
	flag.Var(&files, "add", "host-file=/path/in/image (repeatable); symlinks are followed")
	flag.Var(&env, "env", "NAME=value for the image's environment (repeatable)")
	flag.Parse()
	if *name == "" || len(files) == 0 || !strings.Contains(*name, ":") {
		log.Fatal("-name repo:tag and at least one -add are required")
	}
	*name = normalize(*name)
	epoch := time.Unix(0, 0).UTC()

	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	dirs := map[string]bool{}
	var mkdir func(d string, mode int64)
	mkdir = func(d string, mode int64) {
		if d == "/" || d == "." || dirs[d] {
			return
		}
		mkdir(path.Dir(d), 0o755)
		dirs[d] = true
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode, ModTime: epoch}))
	}
	put := func(p string, mode int64, b []byte) {
		mkdir(path.Dir(p), 0o755)
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(b)), ModTime: epoch}))
		_, err := tw.Write(b)
		must(err)
	}
	mkdir("/tmp", 0o1777)
	passwd := "root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
	group := "root:x:0:\nnobody:x:65534:\n"
	if *user != "" {
		uid, gid, _ := strings.Cut(*user, ":")
		if gid == "" {
			gid = uid
		}
		passwd += fmt.Sprintf("nonroot:x:%s:%s:nonroot:/:/sbin/nologin\n", uid, gid)
		group += fmt.Sprintf("nonroot:x:%s:\n", gid)
	}
	put("/etc/passwd", 0o644, []byte(passwd))
	put("/etc/group", 0o644, []byte(group))
	sort.Strings(files)
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok || !path.IsAbs(dst) {
			log.Fatalf("-add %q: want host-file=/absolute/path", f)
		}
		b, err := os.ReadFile(src)
		must(err)
		st, err := os.Stat(src)
		must(err)
		put(dst, int64(st.Mode().Perm()), b)
	}
	must(tw.Close())
	layerDigest := digest(layer.Bytes())

	cfg := map[string]any{
		"architecture": "amd64", "os": "linux", "created": epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": strings.Fields(*entry), "User": *user, "WorkingDir": "/",
			"Env": append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...),
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		"history": []map[string]any{{"created": epoch.Format(time.RFC3339), "created_by": "hack/cluster/imgtool"}},
	}
	cfgB, _ := json.Marshal(cfg)
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(cfgB), "size": len(cfgB)},
		"layers": []map[string]any{{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layer.Len()}},
	})
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(man), "size": len(man),
			"platform":    map[string]string{"architecture": "amd64", "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": *name, "org.opencontainers.image.ref.name": (*name)[strings.LastIndex(*name, ":")+1:]},
		}},
	})

	f, err := os.Create(*out)
	must(err)
	ow := tar.NewWriter(f)
	blob := func(b []byte) {
		must(ow.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:"), Mode: 0o644, Size: int64(len(b)), ModTime: epoch}))
		_, err := ow.Write(b)
		must(err)
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		must(ow.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}))
	}
	blob(layer.Bytes())
	blob(cfgB)
	blob(man)
	for n, b := range map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": index} {
		must(ow.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}))
		_, err := ow.Write(b)
		must(err)
	}
	must(ow.Close())
	must(f.Close())
	log.Printf("wrote %s: %s, %d files, layer %d bytes, manifest %s", *out, *name, len(files), layer.Len(), digest(man))
}
