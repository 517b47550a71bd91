package sniff

import (
	"bufio"
	"encoding/binary"
	"io"
)

// sniffGIF reads a GIF's logical screen and every frame descriptor, skipping
// the image data. The size it reports is the canvas a decoder makes: the
// screen grown to hold every frame, because libvips' GIF loader grows its
// canvas to a frame that does not fit rather than clipping it. Counting the
// screen alone let a 34-byte file with a 1x1 screen and a 65535x65535 frame
// through, and the worker then tried to allocate 17 GB.
//
// A frame of zero width or height, or a file without a frame, is
// unsupported. A file truncated after some frames keeps those frames:
// decoders show what they could read.
func sniffGIF(r *bufio.Reader) (Header, error) {
	screen := make([]byte, 13) // signature, width, height, flags, background, aspect
	if _, err := io.ReadFull(r, screen); err != nil {
		return Header{}, ErrUnsupported
	}
	w := int(binary.LittleEndian.Uint16(screen[6:8]))
	h := int(binary.LittleEndian.Uint16(screen[8:10]))
	if screen[10]&0x80 != 0 { // global colour table
		if _, err := r.Discard(3 << (screen[10]&7 + 1)); err != nil {
			return Header{}, ErrUnsupported
		}
	}
	frames := 0
	desc := make([]byte, 9)
	for {
		b, err := r.ReadByte()
		if err != nil || b == 0x3B { // end of file, or the trailer
			break
		}
		if b == 0x21 { // extension: label, then sub-blocks
			if _, err := r.ReadByte(); err != nil {
				break
			}
			if err := skipSubBlocks(r); err != nil {
				break
			}
			continue
		}
		if b != 0x2C {
			return Header{}, ErrUnsupported // neither an image descriptor nor anything else GIF knows
		}
		if _, err := io.ReadFull(r, desc); err != nil {
			break // a frame whose size is cut off cannot be decoded either
		}
		left := int(binary.LittleEndian.Uint16(desc[0:2]))
		top := int(binary.LittleEndian.Uint16(desc[2:4]))
		fw := int(binary.LittleEndian.Uint16(desc[4:6]))
		fh := int(binary.LittleEndian.Uint16(desc[6:8]))
		if fw == 0 || fh == 0 {
			return Header{}, ErrUnsupported
		}
		w, h = max(w, left+fw), max(h, top+fh)
		frames++
		if desc[8]&0x80 != 0 { // local colour table
			if _, err := r.Discard(3 << (desc[8]&7 + 1)); err != nil {
				break
			}
		}
		if _, err := r.ReadByte(); err != nil { // LZW minimum code size
			break
		}
		if err := skipSubBlocks(r); err != nil {
			break
		}
	}
	if frames == 0 {
		return Header{}, ErrUnsupported
	}
	return Header{Format: GIF, Width: w, Height: h, Frames: frames}, nil
}

// skipSubBlocks skips a chain of data sub-blocks up to its terminator.
func skipSubBlocks(r *bufio.Reader) error {
	for {
		n, err := r.ReadByte()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := r.Discard(int(n)); err != nil {
			return err
		}
	}
}
