// Command dns is the cluster DNS of the make e2e-cluster node (hack/cluster): it
// answers A queries for <service>.<namespace>.svc.<domain> with the Service's
// ClusterIP, and nothing else (NXDOMAIN; it never forwards a query anywhere).
// The kubelet points pods at it (clusterDNS). Services are read with kubectl
// every second.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"log"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"
)

var (
	mu       sync.RWMutex
	services = map[string]net.IP{} // "name.namespace" -> ClusterIP
)

func refresh() {
	out, err := exec.Command("kubectl", "get", "services", "-A", "-o",
		`jsonpath={range .items[*]}{.metadata.name}.{.metadata.namespace} {.spec.clusterIP}{"\n"}{end}`).Output()
	if err != nil {
		log.Printf("kubectl get services: %v", err)
		return
	}
	m := map[string]net.IP{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, ip, _ := strings.Cut(sc.Text(), " ")
		if v4 := net.ParseIP(ip).To4(); v4 != nil {
			m[name] = v4
		}
	}
	mu.Lock()
	services = m
	mu.Unlock()
}

// answer builds the reply to one query; nil drops it.
func answer(q []byte, suffix string) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 || q[2]&0x80 != 0 {
		return nil
	}
	// the question's name
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		n := int(q[i])
		if n > 63 || i+1+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+n]))
		i += 1 + n
	}
	if i+5 > len(q) {
		return nil
	}
	qend := i + 5
	qtype := binary.BigEndian.Uint16(q[i+1:])
	name := strings.ToLower(strings.Join(labels, "."))

	rcode := byte(3) // NXDOMAIN
	var ip net.IP
	if rest, ok := strings.CutSuffix(name, suffix); ok && strings.Count(rest, ".") == 1 {
		mu.RLock()
		ip = services[rest]
		mu.RUnlock()
		if ip != nil {
			rcode = 0
		}
	}
	r := append([]byte{}, q[:qend]...)
	r[2] = 0x84 | q[2]&0x01 // response, authoritative, RD copied
	r[3] = rcode
	binary.BigEndian.PutUint16(r[6:], 0)  // answers
	binary.BigEndian.PutUint16(r[8:], 0)  // authority
	binary.BigEndian.PutUint16(r[10:], 0) // additional
	if ip != nil && qtype == 1 {
		binary.BigEndian.PutUint16(r[6:], 1)
		r = append(r, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4)
		r = append(r, ip...)
	}
	return r
}

func main() {
	listen := flag.String("listen", "10.88.0.1:53", "UDP address to answer on")
	domain := flag.String("domain", "cluster.local", "cluster domain")
	flag.Parse()
	refresh()
	go func() {
		for range time.Tick(time.Second) {
			refresh()
		}
	}()
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("answering <service>.<namespace>.svc.%s on %s", *domain, *listen)
	buf := make([]byte, 512)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		if r := answer(buf[:n], ".svc."+*domain); r != nil {
			_, _ = pc.WriteTo(r, addr)
		}
	}
}
