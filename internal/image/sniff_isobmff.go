package image

import (
	"bytes"
	"encoding/binary"
	"io"
)

// sniffISOBMFF reads the size of a HEIF or AVIF from its meta box.
func sniffISOBMFF(f Format, buf []byte, r io.Reader, start int64) (Header, error) {
	data, err := io.ReadAll(io.MultiReader(bytes.NewReader(buf), io.LimitReader(r, headerLimit)))
	if err != nil {
		return Header{}, err
	}
	w, h, ok := isobmffSize(data)
	if !ok {
		return Header{}, ErrUnsupported
	}
	return Header{Format: f, Width: w, Height: h, Frames: 1}, nil
}

// isobmffSize returns the largest image spatial extent ("ispe") declared in
// the meta box of a HEIF or AVIF file. The largest one is the primary image
// (the others are thumbnails or grid tiles), and an upper bound is what the
// pixel limit needs.
func isobmffSize(data []byte) (int, int, bool) {
	meta, ok := findBox(data, "meta")
	if !ok || len(meta) < 4 {
		return 0, 0, false
	}
	iprp, ok := findBox(meta[4:], "iprp") // meta is a full box: skip version and flags
	if !ok {
		return 0, 0, false
	}
	ipco, ok := findBox(iprp, "ipco")
	if !ok {
		return 0, 0, false
	}
	bw, bh := 0, 0
	for _, b := range boxes(ipco) {
		if b.typ != "ispe" || len(b.body) < 12 {
			continue
		}
		w := int(binary.BigEndian.Uint32(b.body[4:8]))
		h := int(binary.BigEndian.Uint32(b.body[8:12]))
		if int64(w)*int64(h) > int64(bw)*int64(bh) {
			bw, bh = w, h
		}
	}
	return bw, bh, bw > 0 && bh > 0
}

// isobmffBrand tells AVIF from HEIF by the ftyp brands in the first bytes.
func isobmffBrand(b []byte) (Format, bool) {
	size := int(binary.BigEndian.Uint32(b[0:4]))
	end := min(size, len(b))
	brands := []string{string(b[8:12])}
	for i := 16; i+4 <= end; i += 4 {
		brands = append(brands, string(b[i:i+4]))
	}
	heif := false
	for _, br := range brands {
		switch br {
		case "avif", "avis":
			return AVIF, true
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1":
			heif = true
		}
	}
	return HEIF, heif
}

type box struct {
	typ  string
	body []byte
}

// boxes splits data into ISOBMFF boxes, stopping at the first malformed one.
func boxes(data []byte) []box {
	var out []box
	for len(data) >= 8 {
		size := uint64(binary.BigEndian.Uint32(data[0:4]))
		typ := string(data[4:8])
		hdr := uint64(8)
		switch size {
		case 0:
			size = uint64(len(data))
		case 1:
			if len(data) < 16 {
				return out
			}
			size = binary.BigEndian.Uint64(data[8:16])
			hdr = 16
		}
		if size < hdr || size > uint64(len(data)) {
			return out
		}
		out = append(out, box{typ: typ, body: data[hdr:size]})
		data = data[size:]
	}
	return out
}

func findBox(data []byte, typ string) ([]byte, bool) {
	for _, b := range boxes(data) {
		if b.typ == typ {
			return b.body, true
		}
	}
	return nil, false
}
