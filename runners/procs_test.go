package runners

import (
	goruntime "runtime"
	"testing"
)

func TestAtLeastTwoPs(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(0))
	for _, tc := range []struct{ set, want int }{{1, 2}, {2, 2}, {3, 3}} {
		goruntime.GOMAXPROCS(tc.set)
		atLeastTwoPs()
		if got := goruntime.GOMAXPROCS(0); got != tc.want {
			t.Errorf("GOMAXPROCS %d: after atLeastTwoPs %d, want %d", tc.set, got, tc.want)
		}
	}
}
