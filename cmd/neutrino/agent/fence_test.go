package agent

import (
	"context"
	"errors"
	"testing"
	"time"
)

func views(reachable ...bool) []serverView {
	var out []serverView
	for i, r := range reachable {
		out = append(out, serverView{Name: string(rune('a' + i)), Reachable: r})
	}
	return out
}

func TestFenceDecider(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steps := []struct {
		ms   int
		view []serverView
		want fenceAction
	}{
		{0, nil, fenceNone},                          // no server known: nothing to lose
		{10, views(true, true, true), fenceNone},     // healthy
		{20, views(true, false, false), fenceNone},   // lost the majority: the clock starts
		{100, views(true, false, false), fenceNone},  // not for long enough yet
		{110, views(true, true, false), fenceNone},   // back (2 of 3) before the delay: resets
		{200, views(false, false, true), fenceNone},  // lost again at 200
		{340, views(false, false, true), fenceNone},  // 140 ms < 150 ms
		{350, views(false, false, true), fenceNow},   // 150 ms: fence
		{400, views(false, false, false), fenceNone}, // fenced once, not again
		{500, views(true, true, false), unfenceNow},  // majority back
		{510, views(true, true, false), fenceNone},
		{600, views(true, false), fenceNone},                     // 1 of 2 is not a majority
		{760, views(true, false), fenceNow},                      // 160 ms later
		{770, views(true, true, false, false, true), unfenceNow}, // 3 of 5
	}
	d := fenceDecider{delay: 150 * time.Millisecond}
	for _, s := range steps {
		if got := d.observe(at(s.ms), s.view); got != s.want {
			t.Fatalf("at %d ms with %v: %v, want %v", s.ms, s.view, got, s.want)
		}
	}
}

func TestFenceStepRetriesFailedRemoval(t *testing.T) {
	now := time.Unix(1000, 0)
	fails := 1
	removed := 0
	f := newFence(fenceConfig{
		Delay: 100 * time.Millisecond,
		now:   func() time.Time { return now },
		remove: func(context.Context) error {
			if fails > 0 {
				fails--
				return errors.New("ovsdb down")
			}
			removed++
			return nil
		},
	})
	ctx := context.Background()
	lost := views(false, false, true)
	f.step(ctx, lost)
	now = now.Add(100 * time.Millisecond)
	f.step(ctx, lost) // fence: the removal fails
	if f.Fenced() || removed != 0 {
		t.Fatalf("fenced %v after a failed removal", f.Fenced())
	}
	now = now.Add(50 * time.Millisecond)
	f.step(ctx, lost) // still lost for long enough: retried at once
	if !f.Fenced() || removed != 1 {
		t.Fatalf("fenced %v, removed %d; want fenced after the retry", f.Fenced(), removed)
	}
	f.step(ctx, lost) // enforced while fenced
	if removed != 2 {
		t.Fatalf("removed %d times, want 2", removed)
	}
	f.step(ctx, views(true, true, true))
	if f.Fenced() {
		t.Fatal("still fenced with every server back")
	}
}
