package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStart returns a process' start time (clock ticks since boot, field 22
// of /proc/PID/stat) and whether it is a zombie; ok is false when there is
// no such process.
func procStart(pid int) (start uint64, zombie, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, false
	}
	// comm (field 2) may hold spaces and parentheses: split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false, false
	}
	return start, f[0] == "Z" || f[0] == "X", true
}

// processOf records a just-started PID with its start time.
func processOf(pid int, what string) Process {
	st, _, _ := procStart(pid)
	return Process{PID: pid, StartTime: st, What: what}
}

// alive reports whether p is still the process the lab started and has not
// exited (a zombie has exited).
func (p Process) alive() bool {
	st, zombie, ok := procStart(p.PID)
	return ok && !zombie && (p.StartTime == 0 || st == p.StartTime)
}

// netnsInode returns the inode of a named network namespace.
func netnsInode(name string) (uint64, bool) {
	var s syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", name), &s); err != nil {
		return 0, false
	}
	return s.Ino, true
}

// processesIn lists the processes whose network namespace is one of
// namespaces: every process a lab starts runs inside one of its
// namespaces, so this finds daemons whose PID never reached the state file.
func processesIn(namespaces []string) []Process {
	inodes := map[string]bool{}
	for _, ns := range namespaces {
		if ino, ok := netnsInode(ns); ok {
			inodes[fmt.Sprintf("net:[%d]", ino)] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil || !inodes[link] {
			continue
		}
		out = append(out, processOf(pid, "found in a lab namespace"))
	}
	return out
}

// killAll sends SIGTERM to every live process of procs, waits up to grace
// for them to exit, then SIGKILLs the rest and waits again. Signals go to
// the recorded PIDs only, and only while they still name the same process.
func killAll(ctx context.Context, procs []Process, grace time.Duration) error {
	var live []Process
	seen := map[int]bool{}
	for _, p := range procs {
		if p.PID <= 1 || seen[p.PID] || !p.alive() {
			continue
		}
		seen[p.PID] = true
		live = append(live, p)
	}
	signal := func(sig syscall.Signal) {
		for _, p := range live {
			if p.alive() {
				_ = syscall.Kill(p.PID, sig)
			}
		}
	}
	gone := func() bool {
		for _, p := range live {
			if p.alive() {
				return false
			}
		}
		return true
	}
	signal(syscall.SIGTERM)
	if waitUntil(ctx, grace, gone) {
		return nil
	}
	signal(syscall.SIGKILL)
	if waitUntil(ctx, 5*time.Second, gone) {
		return nil
	}
	var left []string
	for _, p := range live {
		if p.alive() {
			left = append(left, fmt.Sprintf("%d (%s)", p.PID, p.What))
		}
	}
	return fmt.Errorf("lab: processes still alive after SIGKILL: %s", strings.Join(left, ", "))
}

// waitUntil polls cond every 20 ms until it holds (true) or timeout or ctx
// ends (false).
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}

// errTimeout is returned by poll when the deadline passes.
var errTimeout = errors.New("timed out")

// poll calls cond until it reports done, fails, or timeout passes; the
// last non-fatal reason it gave is part of the timeout error.
func poll(parent context.Context, timeout time.Duration, cond func() (done bool, reason string, err error)) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var last string
	for {
		done, reason, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		last = reason
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return err
			}
			if last != "" {
				return fmt.Errorf("%w after %s: %s", errTimeout, timeout, last)
			}
			return fmt.Errorf("%w after %s", errTimeout, timeout)
		case <-t.C:
		}
	}
}

// kill sends SIGKILL to p if it is still the process the lab started.
func (p Process) kill() error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("lab: kill %d (%s): %w", p.PID, p.What, err)
	}
	return nil
}
