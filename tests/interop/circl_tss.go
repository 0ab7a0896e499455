// circl_tss: Cloudflare CIRCL's tss/rsa (Debian golang-github-cloudflare-circl-dev)
// on the key shares keysplit deals, for the interop test and the benchmark.
// Everything is hex on the command line and on stdout.
//
//	circl_tss sign PLAYERS THRESHOLD INDEX S_HEX N_HEX E EM_HEX
//	    CIRCL's signature share x_i = em^(2 Delta s_i) mod n (with its blinding)
//	circl_tss combine PLAYERS THRESHOLD N_HEX E EM_HEX INDEX:XI_HEX...
//	    CIRCL's CombineSignShares of those signature shares
//	circl_tss bench PLAYERS INDEX S_HEX N_HEX E SECONDS
//	    signature shares (blinded, one goroutine) per second of CPU
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	tss "github.com/cloudflare/circl/tss/rsa"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "circl_tss: "+format+"\n", args...)
	os.Exit(1)
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		die("bad hex: %v", err)
	}
	return b
}

func num(s string) uint {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		die("bad number %q", s)
	}
	return uint(v)
}

func pubKey(nHex, e string) *rsa.PublicKey {
	v, err := strconv.ParseUint(e, 10, 31)
	if err != nil {
		die("bad exponent %q", e)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(unhex(nHex)), E: int(v)}
}

// keyShare builds CIRCL's KeyShare through its own binary form:
// Players u16 | Threshold u16 | Index u16 | siLen u16 | si | twoDeltaSi present u8 = 0 | len u16 = 0.
func keyShare(players, threshold, index uint, si []byte) *tss.KeyShare {
	b := make([]byte, 8, 11+len(si))
	binary.BigEndian.PutUint16(b[0:], uint16(players))
	binary.BigEndian.PutUint16(b[2:], uint16(threshold))
	binary.BigEndian.PutUint16(b[4:], uint16(index))
	binary.BigEndian.PutUint16(b[6:], uint16(len(si)))
	b = append(b, si...)
	b = append(b, 0, 0, 0)
	var ks tss.KeyShare
	if err := ks.UnmarshalBinary(b); err != nil {
		die("key share: %v", err)
	}
	return &ks
}

// signShare builds CIRCL's SignShare: Players | Threshold | Index | xiLen | xi.
func signShare(players, threshold, index uint, xi []byte) tss.SignShare {
	b := make([]byte, 8, 8+len(xi))
	binary.BigEndian.PutUint16(b[0:], uint16(players))
	binary.BigEndian.PutUint16(b[2:], uint16(threshold))
	binary.BigEndian.PutUint16(b[4:], uint16(index))
	binary.BigEndian.PutUint16(b[6:], uint16(len(xi)))
	b = append(b, xi...)
	var s tss.SignShare
	if err := s.UnmarshalBinary(b); err != nil {
		die("sign share: %v", err)
	}
	return s
}

// xiBytes reads x_i back out of CIRCL's binary form, padded to the modulus length.
func xiBytes(s tss.SignShare, nLen int) []byte {
	b, err := s.MarshalBinary()
	if err != nil {
		die("marshal: %v", err)
	}
	xi := b[8:]
	out := make([]byte, nLen)
	copy(out[nLen-len(xi):], xi)
	return out
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		die("getrusage: %v", err)
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func main() {
	if len(os.Args) < 2 {
		die("usage: circl_tss sign|combine|bench ...")
	}
	switch os.Args[1] {
	case "sign":
		if len(os.Args) != 9 {
			die("usage: circl_tss sign PLAYERS THRESHOLD INDEX S_HEX N_HEX E EM_HEX")
		}
		a := os.Args[2:]
		players, threshold, index := num(a[0]), num(a[1]), num(a[2])
		pub := pubKey(a[4], a[5])
		ks := keyShare(players, threshold, index, unhex(a[3]))
		s, err := ks.Sign(rand.Reader, pub, unhex(a[6]), true)
		if err != nil {
			die("sign: %v", err)
		}
		fmt.Println(hex.EncodeToString(xiBytes(s, len(unhex(a[4])))))
	case "combine":
		if len(os.Args) < 8 {
			die("usage: circl_tss combine PLAYERS THRESHOLD N_HEX E EM_HEX INDEX:XI_HEX...")
		}
		a := os.Args[2:]
		players, threshold := num(a[0]), num(a[1])
		pub := pubKey(a[2], a[3])
		var shares []tss.SignShare
		for _, p := range a[5:] {
			parts := strings.SplitN(p, ":", 2)
			if len(parts) != 2 {
				die("bad share %q", p)
			}
			shares = append(shares, signShare(players, threshold, num(parts[0]), unhex(parts[1])))
		}
		sig, err := tss.CombineSignShares(pub, shares, unhex(a[4]))
		if err != nil {
			die("combine: %v", err)
		}
		out := make([]byte, len(unhex(a[2])))
		copy(out[len(out)-len(sig):], sig)
		fmt.Println(hex.EncodeToString(out))
	case "bench":
		if len(os.Args) != 8 {
			die("usage: circl_tss bench PLAYERS INDEX S_HEX N_HEX E SECONDS")
		}
		a := os.Args[2:]
		players, index := num(a[0]), num(a[1])
		pub := pubKey(a[3], a[4])
		secs, err := strconv.ParseFloat(a[5], 64)
		if err != nil {
			die("bad seconds %q", a[5])
		}
		ks := keyShare(players, 2, index, unhex(a[2]))
		em := make([]byte, len(unhex(a[3])))
		if _, err := rand.Read(em[1:]); err != nil {
			die("rand: %v", err)
		}
		// One untimed share fills CIRCL's cached 2 Delta s_i.
		if _, err := ks.Sign(rand.Reader, pub, em, false); err != nil {
			die("sign: %v", err)
		}
		ops := 0
		c0 := cpuSeconds()
		deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
		for time.Now().Before(deadline) {
			// parallel=false: one core, as ours is measured.
			if _, err := ks.Sign(rand.Reader, pub, em, false); err != nil {
				die("sign: %v", err)
			}
			ops++
		}
		fmt.Printf("%d %.6f\n", ops, cpuSeconds()-c0)
	default:
		die("unknown command %q", os.Args[1])
	}
}
