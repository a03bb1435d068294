// Command rediswrap is /usr/local/bin/redis-server in the make e2e-cluster Redis
// image (hack/cluster/images.sh): it runs Debian's redis-server with the given
// arguments plus "--protected-mode no". The official docker.io/library/redis
// images are built with protected mode off; Debian's binary has it on, and then
// answers every client that is not on loopback with -DENIED and closes the
// connection, because the operator starts Redis without a password or bind.
package main

import (
	"os"
	"syscall"
)

const real = "/usr/local/lib/redis/redis-server"

func main() {
	args := append([]string{"redis-server"}, os.Args[1:]...)
	args = append(args, "--protected-mode", "no")
	if err := syscall.Exec(real, args, os.Environ()); err != nil {
		os.Stderr.WriteString("rediswrap: exec " + real + ": " + err.Error() + "\n")
		os.Exit(127)
	}
}
