package frame

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// lengths covers every branch of the word loops: empty, 1-3 bytes, 4-7,
// one word, two words, the 16-byte chunks, and longer than hashChunks
// chunks (hashed by maphash).
var lengths = []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 255, 256, 257, 300}

func randomString(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func TestSameOrderReadsEveryByte(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range lengths {
		for _, field := range []string{"name", "value"} {
			t.Run(fmt.Sprintf("%s/len=%d", field, n), func(t *testing.T) {
				s := randomString(r, n)
				hs := []Header{{Name: "A", Value: "1"}, {Name: s, Value: s}, {Name: "B", Value: "2"}}
				stored := EncodeHeaders(hs).headers
				require.True(t, sameOrder(hs, stored))
				for i := range n {
					b := []byte(s)
					b[i] ^= 1 << r.IntN(8)
					changed := append([]Header(nil), hs...)
					if field == "name" {
						changed[1].Name = string(b)
					} else {
						changed[1].Value = string(b)
					}
					require.False(t, sameOrder(changed, stored), "byte %d", i)
					require.False(t, sameSet(changed, stored), "byte %d", i)
				}
				longer := append([]Header(nil), hs...)
				longer[1].Value += "x"
				require.False(t, sameOrder(longer, stored))
			})
		}
	}
}

func TestSetHasherKeyCoversEveryByte(t *testing.T) {
	h := newSetHasher()
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range lengths {
		for _, field := range []string{"name", "value"} {
			t.Run(fmt.Sprintf("%s/len=%d", field, n), func(t *testing.T) {
				s := randomString(r, n)
				hs := []Header{{Name: "A", Value: "1"}, {Name: s, Value: s}}
				base := h.key(hs)
				seen := map[uint64]int{base: -1}
				for i := range n {
					for bit := range 8 {
						b := []byte(s)
						b[i] ^= 1 << bit
						changed := append([]Header(nil), hs...)
						if field == "name" {
							changed[1].Name = string(b)
						} else {
							changed[1].Value = string(b)
						}
						k := h.key(changed)
						prev, dup := seen[k]
						require.False(t, dup, "byte %d bit %d collides with %d", i, bit, prev)
						seen[k] = i*8 + bit
					}
				}
			})
		}
	}
}

func TestSetHasherKeyAndShape(t *testing.T) {
	h := newSetHasher()
	base := []Header{{"Host", "example.com"}, {"Accept", "*/*"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}}
	t.Run("order of headers does not matter", func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for range 20 {
			hs := append([]Header(nil), base...)
			r.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
			require.Equal(t, h.key(base), h.key(hs))
			require.Equal(t, h.shape(base), h.shape(hs))
		}
	})
	different := map[string][]Header{
		"name and value swapped":        {{"example.com", "Host"}, {"Accept", "*/*"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}},
		"byte moved from name to value": {{"Hos", "texample.com"}, {"Accept", "*/*"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}},
		"values swapped between names":  {{"Host", "*/*"}, {"Accept", "example.com"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}},
		"one header less":               {{"Host", "example.com"}, {"Accept", "*/*"}, {"Cookie", "a=1"}},
		"a header twice":                {{"Host", "example.com"}, {"Accept", "*/*"}, {"Cookie", "a=1"}, {"Cookie", "a=1"}},
		"empty value":                   {{"Host", ""}, {"Accept", "*/*"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}},
	}
	for name, hs := range different {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, h.key(base), h.key(hs))
			require.False(t, sameSet(hs, base))
		})
	}
	t.Run("shape covers count and lengths only", func(t *testing.T) {
		require.Equal(t, h.shape(base), h.shape([]Header{{"Hxst", "exbmple.com"}, {"Cookie", "b=3"}, {"Accept", "*.*"}, {"Accept", "a=1"}}))
		require.NotEqual(t, h.shape(base), h.shape(different["values swapped between names"]), "lengths are paired")
		require.Equal(t, h.shape([]Header{{"A", "1"}}), h.shape([]Header{{"B", "2"}}))
		require.NotEqual(t, h.shape([]Header{{"A", "1"}}), h.shape([]Header{{"A", "12"}}))
		require.NotEqual(t, h.shape([]Header{{"A", "1"}}), h.shape([]Header{{"A", "1"}, {"A", "1"}}))
		require.NotEqual(t, h.shape([]Header{{"A", "12"}}), h.shape([]Header{{"AB", "1"}}))
	})
	t.Run("seeded per hasher", func(t *testing.T) {
		other := newSetHasher()
		require.NotEqual(t, h.key(base), other.key(base))
		require.NotEqual(t, h.shape(base), other.shape(base))
	})
}
