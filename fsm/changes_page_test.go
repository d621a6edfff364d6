package fsm

import (
	"reflect"
	"testing"
)

func TestChangesPage(t *testing.T) {
	f := New(nil)
	fillChassisTable(t, f, 1) // ch1, ch2 at revision 1
	apply(t, f, 2, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100), testNetwork("n2", 101)}})
	apply(t, f, 3, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n3", 102)}})
	apply(t, f, 4, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"})
	apply(t, f, 5, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: false, At: "t5"})
	networks := func(c Change) bool { return c.Table == TableNetworks }
	all := func(Change) bool { return true }

	cases := []struct {
		name     string
		from, to uint64
		max      int
		keep     func(Change) bool
		want     []Change
		wantUpTo uint64
	}{
		{"everything fits", 0, 5, 10, all, []Change{{TableChassis, "ch1"}, {TableChassis, "ch2"},
			{TableNetworks, "n1"}, {TableNetworks, "n2"}, {TableNetworks, "n3"}}, 5},
		{"cut before the revision that overflows", 0, 5, 3, all, []Change{{TableChassis, "ch1"}, {TableChassis, "ch2"}}, 1},
		{"a revision larger than max comes whole", 1, 5, 1, all, []Change{{TableNetworks, "n1"}, {TableNetworks, "n2"}}, 2},
		{"repeats do not count", 1, 5, 3, networks, []Change{{TableNetworks, "n1"}, {TableNetworks, "n2"}, {TableNetworks, "n3"}}, 5},
		{"filtered out revisions advance", 3, 5, 1, networks, []Change{{TableNetworks, "n1"}}, 5},
		{"nothing kept", 4, 5, 1, networks, nil, 5},
		{"bounded by to", 1, 3, 10, all, []Change{{TableNetworks, "n1"}, {TableNetworks, "n2"}, {TableNetworks, "n3"}}, 3},
	}
	for _, tc := range cases {
		got, upTo, ok := f.ChangesPage(tc.from, tc.to, tc.max, tc.keep)
		if !ok || upTo != tc.wantUpTo || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ChangesPage(%d, %d, %d) = %v up to %d, %v; want %v up to %d",
				tc.name, tc.from, tc.to, tc.max, got, upTo, ok, tc.want, tc.wantUpTo)
		}
	}

	f.SetHistoryBound(2)
	apply(t, f, 6, CmdNetworkDelete, NetworkDeleteRequest{ID: "n2"})
	if _, _, ok := f.ChangesPage(0, 6, 10, all); ok {
		t.Error("a page from before the bounded history reported ok")
	}
	if got, upTo, ok := f.ChangesPage(5, 6, 10, all); !ok || upTo != 6 || !reflect.DeepEqual(got, []Change{{TableNetworks, "n2"}}) {
		t.Errorf("ChangesPage(5, 6) = %v up to %d, %v", got, upTo, ok)
	}
}
