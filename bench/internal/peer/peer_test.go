package peer

import (
	"fmt"
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set[int]
	if got := s.Snapshot(); len(got) != 0 {
		t.Fatalf("empty set snapshot = %v", got)
	}
	s.Add(1)
	s.Add(2)
	before := s.Snapshot()
	s.Add(3)
	s.Remove(1)
	s.Remove(42)
	if got := s.Snapshot(); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("snapshot = %v, want [2 3]", got)
	}
	if !slices.Equal(before, []int{1, 2}) {
		t.Fatalf("an older snapshot changed: %v", before)
	}
}

func ExampleSet() {
	var room Set[string]
	room.Add("alice")
	room.Add("bob")
	for _, m := range room.Snapshot() {
		fmt.Println("send to", m)
	}
	room.Remove("alice")
	fmt.Println(room.Snapshot())
	// Output:
	// send to alice
	// send to bob
	// [bob]
}
