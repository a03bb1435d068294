package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			v, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of %d: %w", pid, err)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is user+system CPU time of pid and, with children, of its
// direct children (PostgreSQL's backends are children of the postmaster).
func cpuSeconds(pid int, children bool) (float64, error) {
	t, _, err := statTimes(pid)
	if err != nil {
		return 0, err
	}
	if children {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			cp, err := strconv.Atoi(filepath.Base(d))
			if err != nil || cp == pid {
				continue
			}
			ct, ppid, err := statTimes(cp)
			if err == nil && ppid == pid {
				t += ct
			}
		}
	}
	return t, nil
}

func statTimes(pid int) (cpu float64, ppid int, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat of %d", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short stat of %d", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / clockTicks, ppid, nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// watched is a process whose CPU use is reported (servers, Redis, PostgreSQL).
type watched struct {
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	children bool
	cpu0     float64
	t0       time.Time
}

// cpuUse is a process's CPU use over a phase, in cores (1.0 = one core busy).
type cpuUse struct {
	Name  string  `json:"name"`
	Cores float64 `json:"cores"`
}

func startCPU(ws []*watched) {
	for _, w := range ws {
		w.cpu0, _ = cpuSeconds(w.PID, w.children)
		w.t0 = time.Now()
	}
}

func endCPU(ws []*watched, selfStart float64, selfT0 time.Time) []cpuUse {
	var out []cpuUse
	for _, w := range ws {
		c, err := cpuSeconds(w.PID, w.children)
		if err != nil {
			continue
		}
		out = append(out, cpuUse{Name: w.Name, Cores: (c - w.cpu0) / time.Since(w.t0).Seconds()})
	}
	out = append(out, cpuUse{Name: "parley-load", Cores: (selfCPU() - selfStart) / time.Since(selfT0).Seconds()})
	return out
}
