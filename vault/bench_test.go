package vault

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkOpen measures unlocking with the passphrase: the Argon2id cost
// dominates. Report ms/op as the unlock time.
func BenchmarkOpen(b *testing.B) {
	cases := map[string]KDFParams{"DefaultKDF": DefaultKDF, "FastKDF": FastKDF}
	for name, p := range cases {
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "v")
			if _, err := Create(path, []byte("bench"), CreateOptions{KDF: p}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(path, Unlock{Passphrase: []byte("bench")}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("KeyFile", func(b *testing.B) {
		path, kf := fixtureCopy(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Open(path, Unlock{KeyFile: kf}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUpdate measures one locked read-modify-write with fsyncs, on a
// vault of 100 credentials.
func BenchmarkUpdate(b *testing.B) {
	v := openFixture(b)
	err := v.Update(func(d *Data) error {
		for i := range 100 {
			p := fmt.Sprintf("bench/cred%03d", i)
			d.SetCredential(&Credential{Path: p, Value: NewSecret([]byte("0123456789abcdef0123456789abcdef"))})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		err := v.Update(func(d *Data) error {
			d.Credentials["bench/cred000"].Value = NewSecret(fmt.Appendf(nil, "value-%d", i))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
