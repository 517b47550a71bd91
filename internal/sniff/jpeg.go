package sniff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// jpegScans counts the scans (SOS segments) of a JPEG from its first byte
// to its end-of-image marker, the way libjpeg reads them, in memory bounded
// by r's buffer: a 50-megapixel greyscale JPEG of 554 KB with 6,000 empty
// scans is valid and costs a decoder about 27 CPU-seconds, one pass over
// every block per scan. It stops counting past MaxJPEGScans, and a file
// truncated before its end marker keeps the scans seen so far; only an
// error of r other than the end of the data is returned.
func jpegScans(r *bufio.Reader) (int, error) {
	scans := 0
	length := make([]byte, 2)
	for scans <= MaxJPEGScans {
		marker, err := nextJPEGMarker(r)
		if err != nil {
			return scans, endOfData(err)
		}
		switch marker {
		case 0xD9: // EOI: libjpeg reads nothing after it
			return scans, nil
		case 0xD8, 0x01: // SOI, TEM: markers without a segment
			continue
		}
		// Every other marker starts a segment whose length counts its own
		// two bytes; libjpeg skips a shorter one as empty.
		if _, err := io.ReadFull(r, length); err != nil {
			return scans, endOfData(err)
		}
		if n := int(binary.BigEndian.Uint16(length)); n > 2 {
			if _, err := r.Discard(n - 2); err != nil {
				return scans, endOfData(err)
			}
		}
		if marker == 0xDA {
			scans++
		}
	}
	return scans, nil
}

// nextJPEGMarker reads up to the next marker and returns its code. Bytes
// that are not 0xFF are entropy-coded data after a scan header, or garbage
// that libjpeg skips with a warning, so both are skipped; 0xFF fill bytes
// may precede a marker; 0xFF00 is a stuffed 0xFF data byte and RST0-7
// separate restart intervals inside a scan, so neither is a marker here
// (libjpeg ignores a restart marker found between segments too).
func nextJPEGMarker(r *bufio.Reader) (byte, error) {
	for {
		if _, err := r.ReadSlice(0xFF); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue // a buffer of data without 0xFF: skip it
			}
			return 0, err
		}
		b, err := r.ReadByte()
		for err == nil && b == 0xFF {
			b, err = r.ReadByte()
		}
		if err != nil {
			return 0, err
		}
		if b != 0x00 && (b < 0xD0 || b > 0xD7) {
			return b, nil
		}
	}
}

// endOfData turns the end of the input, where a truncated file stops, into
// no error.
func endOfData(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}
