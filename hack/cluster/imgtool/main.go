// Command imgtool writes a single-layer OCI image archive from files on this
// machine (no Docker, no registry), for `ctr images import` on the make
// e2e-cluster node (hack/cluster). The image (config, manifest, index, the
// OCI layout) is made with github.com/google/go-containerregistry; imgtool
// only writes the layer's files and tars the layout folder.
//
//	imgtool -name parley/chatserver:dev -entrypoint /chatserver -user 65532:65532 \
//	        -add bin/cluster/chatserver=/chatserver -o chatserver.tar
//
// The layer holds the -add files (parent folders created), a /tmp with mode
// 1777 and an /etc/passwd and /etc/group naming root, nobody and the -user
// uid. Timestamps are the epoch, so the same inputs give the same digests.
//
// Its own module (hack/cluster/imgtool/go.mod), so the project's go.mod does
// not carry go-containerregistry for a test tool.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
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

var epoch = time.Unix(0, 0).UTC()

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
	layerTar, err := layerFiles(files, *user)
	if err != nil {
		log.Fatal(err)
	}
	img, err := image(layerTar, *entry, *user, env)
	if err != nil {
		log.Fatal(err)
	}
	if err := writeArchive(*out, *name, img); err != nil {
		log.Fatal(err)
	}
	dig, _ := img.Digest()
	log.Printf("wrote %s: %s, %d files, layer %d bytes, manifest %s", *out, *name, len(files), len(layerTar), dig)
}

// layerFiles is the layer's uncompressed tar: /tmp, /etc/passwd, /etc/group and the -add files.
func layerFiles(files []string, user string) ([]byte, error) {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	var mkdir func(d string, mode int64) error
	mkdir = func(d string, mode int64) error {
		if d == "/" || d == "." || dirs[d] {
			return nil
		}
		if err := mkdir(path.Dir(d), 0o755); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode, ModTime: epoch})
	}
	put := func(p string, mode int64, b []byte) error {
		if err := mkdir(path.Dir(p), 0o755); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(p, "/"), Mode: mode, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := mkdir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	passwd := "root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
	group := "root:x:0:\nnobody:x:65534:\n"
	if user != "" {
		uid, gid, _ := strings.Cut(user, ":")
		if gid == "" {
			gid = uid
		}
		passwd += fmt.Sprintf("nonroot:x:%s:%s:nonroot:/:/sbin/nologin\n", uid, gid)
		group += fmt.Sprintf("nonroot:x:%s:\n", gid)
	}
	if err := put("/etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := put("/etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok || !path.IsAbs(dst) {
			return nil, fmt.Errorf("-add %q: want host-file=/absolute/path", f)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if err := put(dst, int64(st.Mode().Perm()), b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return layer.Bytes(), nil
}

// image is the OCI image (manifest and config of OCI media types) of the one
// layer, gzipped by go-containerregistry (deterministically: no gzip
// timestamp), with the run settings and epoch timestamps.
func image(layerTar []byte, entry, user string, env []string) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "hack/cluster/imgtool"}})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = "amd64", "linux", v1.Time{Time: epoch}
	cf.Config = v1.Config{Entrypoint: strings.Fields(entry), User: user, WorkingDir: "/",
		Env: append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, env...)}
	return mutate.ConfigFile(img, cf)
}

// writeArchive writes img as an OCI layout (go-containerregistry's layout
// package) and tars that folder with epoch timestamps in name order, the form
// `ctr images import` reads; the index entry names the image for containerd.
func writeArchive(out, name string, img v1.Image) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".imgtool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithPlatform(v1.Platform{Architecture: "amd64", OS: "linux"}),
		layout.WithAnnotations(map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name[strings.LastIndex(name, ":")+1:]})); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.IsDir() {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
