package upgrade_test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// previousRelease is the release a rolling upgrade starts from: 05fefc1,
// the last commit before servers announced their version and command
// types (issue 17). Main at 32ae10d, the last landed code, has the same
// command types, wire formats and flags as this tree, so an upgrade from
// it would exercise nothing; 05fefc1 lacks the announcements (its servers
// know fsm.BaselineCommands), the finalize command (type 180) and the
// agent's --ovsdb-local flag.
const previousRelease = "05fefc1ad58eff9ce44293513b1f8efbddc79dd7"

// previousArchive is previousRelease's tree (`git archive --format=tar.gz
// -9 05fefc1`), for clones without that commit (shallow ones): the test
// must build the previous release offline, with the Go module proxy only.
// At a release, refresh it with the new previous release and change
// previousRelease (README: Upgrades).
const previousArchive = "testdata/neutrino-05fefc1.tar.gz"

// historyRoot returns the clone's top directory if its history holds
// previousRelease.
func historyRoot() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", false
	}
	root := strings.TrimSpace(string(out))
	if exec.Command("git", "-C", root, "cat-file", "-e", previousRelease+"^{commit}").Run() != nil {
		return "", false
	}
	return root, true
}

// readPrevious calls fn with previousRelease's tree as a tar stream: from
// git history when the clone has the commit, else from previousArchive.
// It returns where the tree came from.
func readPrevious(fromHistory bool, fn func(io.Reader) error) (string, error) {
	if root, ok := historyRoot(); ok && fromHistory {
		cmd := exec.Command("git", "-C", root, "archive", "--format=tar", previousRelease)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return "", err
		}
		if err := cmd.Start(); err != nil {
			return "", fmt.Errorf("git archive: %w", err)
		}
		ferr := fn(out)
		// Drain what fn left so git exits.
		_, _ = io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			return "", fmt.Errorf("git archive %s: %w: %s", previousRelease, err, stderr.String())
		}
		return "git history", ferr
	}
	f, err := os.Open(previousArchive)
	if err != nil {
		return "", fmt.Errorf("the previous release is neither in this clone's history nor in %s: %w", previousArchive, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", previousArchive, err)
	}
	return previousArchive, fn(gz)
}

// eachFile calls fn for every regular file of a tar stream; a path
// leaving the tree or an entry type a source tree does not hold is an
// error (the archive is extracted, it must not write outside its dir).
func eachFile(r io.Reader, fn func(name string, mode os.FileMode, body io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeDir:
			// git archive's commit id header; directories come with files.
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("tar: %s: unexpected entry type %q", h.Name, h.Typeflag)
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("tar: %s leaves the tree", h.Name)
		}
		if err := fn(filepath.Clean(h.Name), h.FileInfo().Mode(), tr); err != nil {
			return err
		}
	}
}

// buildPrevious builds previousRelease's neutrino with its own go.mod
// into dir, without the race detector, and says where its source came
// from. -trimpath keeps the build's cache keys free of the temporary
// path, so a second run is served from the build cache.
func buildPrevious(dir string) (bin, from string, err error) {
	src := filepath.Join(dir, "src")
	// NEUTRINO_UPGRADE_SOURCE=archive builds from the committed copy even
	// where history has the commit: what a shallow clone does.
	from, err = readPrevious(os.Getenv("NEUTRINO_UPGRADE_SOURCE") != "archive", func(r io.Reader) error {
		return eachFile(r, func(name string, mode os.FileMode, body io.Reader) error {
			p := filepath.Join(src, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, body); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		})
	})
	if err != nil {
		return "", "", fmt.Errorf("previous release %s: %w", previousRelease[:7], err)
	}
	bin = filepath.Join(dir, "neutrino-"+previousRelease[:7])
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/neutrino")
	build.Dir = src
	// Its Makefile's tag (lab-notes: go-metrics); no workspace of ours.
	build.Env = append(os.Environ(), "GOFLAGS=-tags=hashicorpmetrics", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build %s: %w\n%s", previousRelease[:7], err, out)
	}
	return bin, from, nil
}

// TestPreviousArchive checks that the committed copy of the previous
// release is that commit's tree, file for file, where history can tell.
func TestPreviousArchive(t *testing.T) {
	if _, ok := historyRoot(); !ok {
		t.Skipf("this clone's history lacks %s (shallow?): nothing to compare %s with", previousRelease[:7], previousArchive)
	}
	sums := func(fromHistory bool) map[string]string {
		m := map[string]string{}
		if _, err := readPrevious(fromHistory, func(r io.Reader) error {
			return eachFile(r, func(name string, mode os.FileMode, body io.Reader) error {
				h := sha256.New()
				if _, err := io.Copy(h, body); err != nil {
					return err
				}
				m[name] = fmt.Sprintf("%x %o", h.Sum(nil), mode.Perm())
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	git, archive := sums(true), sums(false)
	if len(git) < 100 {
		t.Fatalf("git archive %s gave %d files", previousRelease[:7], len(git))
	}
	for name, sum := range git {
		if archive[name] != sum {
			t.Errorf("%s: %s in %s, %q in %s", name, sum, previousRelease[:7], archive[name], previousArchive)
		}
	}
	for name := range archive {
		if _, ok := git[name]; !ok {
			t.Errorf("%s: in %s, not in %s", name, previousArchive, previousRelease[:7])
		}
	}
	t.Logf("%d files, the same in %s and %s", len(git), previousArchive, previousRelease[:7])
}
