package imaging

/*
#include "bench.h"
*/
import "C"

import (
	"errors"
	"runtime"
)

// The floors make bench measures a pipeline against; the pipeline itself
// uses none of this.

// DecodeFull decodes every pixel of src once through libvips' loader: the
// floor a pipeline's cost is compared with in the benchmark.
func DecodeFull(src []byte) error {
	if len(src) == 0 {
		return errors.New("empty source")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer threadShutdown()
	return decodeFull(src)
}

// DecodeFullTurbo decodes every pixel of a JPEG once with libjpeg-turbo
// from memory, the cheapest full decode of a JPEG (the floor of the
// libjpeg-turbo path).
func DecodeFullTurbo(src []byte) error {
	if len(src) == 0 {
		return errors.New("empty source")
	}
	return decodeFullTurbo(src)
}

// decodeFull decodes every pixel of src through libvips' loader (see
// bench_decode_full).
func decodeFull(src []byte) error {
	p, n := cbuf(src)
	if C.bench_decode_full(p, n) != 0 {
		return vipsError()
	}
	return nil
}

// decodeFullTurbo decodes every pixel of a JPEG with libjpeg-turbo (see
// bench_decode_full_turbo).
func decodeFullTurbo(src []byte) error {
	p, n := cbuf(src)
	if C.bench_decode_full_turbo(p, n) != 0 {
		return errors.New("libjpeg-turbo could not decode the source")
	}
	return nil
}
