package sniff

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
)

// HEIF and AVIF keep their structure in a meta box: items (the primary
// image, its grid tiles, thumbnails, alpha planes), where each item's data
// lies (iloc), and properties associated with items (ipma) such as the
// declared size (ispe), the decoder configuration (hvcC, av1C) and
// transformations (clap, irot).
//
// The declared size is only a claim: the decoder allocates the size coded
// in the bitstream, and a patched ispe of 100x100 over a 10000x10000 coded
// image took a worker to 630 MB. So the pixel limit takes the largest of
// every ispe, every coded size (from the decoder configurations and from
// the items' data, which libheif hands to the decoder after them) and every
// grid or overlay canvas. The size reported is what libheif, and so
// libvips, reports for the primary item: its ispe, cropped by its clap and
// turned by its irot.

// Limits libheif 1.15 sets itself; a file over them does not decode.
const (
	maxHEIFItems   = 20000 // MAX_ILOC_ITEMS, MAX_CHILDREN_PER_BOX
	maxItemExtents = 32    // MAX_ILOC_EXTENTS_PER_ITEM
)

// maxParamSetBytes bounds how much of one parameter set or sequence header
// is read: the sizes sit in its first hundred bytes or so.
const maxParamSetBytes = 4096

// errItemBudget says the items' data added up to more than the file: the
// extents of different items overlap, which no encoder writes, and walking
// them would read the file over and over.
var errItemBudget = errors.New("heif items overlap")

// sniffISOBMFF reads the sizes of a HEIF or AVIF: the primary image as
// shown, and the largest picture a decoder makes (Header.DecodedWidth and
// DecodedHeight).
func sniffISOBMFF(f Format, buf []byte, r io.Reader, start int64) (Header, error) {
	file, size, err := randomAccess(buf, r, start)
	if err != nil {
		return Header{}, err
	}
	head := make([]byte, min(size, headerLimit))
	if _, err := file.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return Header{}, err
	}
	meta, ok := findBox(head, "meta")
	if !ok || len(meta) < 4 {
		return Header{}, ErrUnsupported
	}
	hf, err := parseMeta(meta[4:]) // meta is a full box: skip version and flags
	if err != nil {
		return Header{}, ErrUnsupported
	}
	w, h, ok := hf.shownSize()
	if !ok {
		return Header{}, ErrUnsupported
	}
	dw, dh, err := hf.decodedSize(file, size)
	if errors.Is(err, errItemBudget) {
		return Header{}, ErrUnsupported
	}
	if err != nil {
		return Header{}, err
	}
	return Header{Format: f, Width: w, Height: h, DecodedWidth: dw, DecodedHeight: dh, Frames: 1}, nil
}

// randomAccess gives the whole file when r can read at offsets (a spooled
// upload, a bytes.Reader), so that item data anywhere in it can be read;
// otherwise its first headerLimit bytes, which hold the meta box of any
// file an encoder writes but perhaps not all the data it points to.
func randomAccess(buf []byte, r io.Reader, start int64) (io.ReaderAt, int64, error) {
	if ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	}); ok && start >= 0 {
		end, err := ra.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, err
		}
		size := max(end-start, 0)
		return io.NewSectionReader(ra, start, size), size, nil
	}
	rest, err := io.ReadAll(io.LimitReader(r, headerLimit))
	if err != nil {
		return nil, 0, err
	}
	head := append(buf, rest...)
	return bytes.NewReader(head), int64(len(head)), nil
}

// heifFile is what a meta box says about the items of a file.
type heifFile struct {
	primary uint32 // pitm; 0 when absent
	items   map[uint32]*heifItem
	props   []box // the children of ipco, which ipma numbers from 1
	idat    []byte
}

// heifItem is one item: its type (iinf), its properties in the order ipma
// lists them, which is the order transformations apply in, and its data
// (iloc).
type heifItem struct {
	typ     string
	props   []int
	method  uint16 // construction_method: 0 offsets in the file, 1 in idat
	extents []extent
}

type extent struct{ offset, length uint64 }

// item returns the item with id, adding it when new.
func (hf *heifFile) item(id uint32) (*heifItem, error) {
	it, ok := hf.items[id]
	if !ok {
		if len(hf.items) >= maxHEIFItems {
			return nil, errors.New("too many heif items")
		}
		it = &heifItem{}
		hf.items[id] = it
	}
	return it, nil
}

// parseMeta reads the children of a meta box. A box cut short yields what
// it held up to the cut; only going over libheif's own limits is an error.
func parseMeta(meta []byte) (*heifFile, error) {
	hf := &heifFile{items: map[uint32]*heifItem{}}
	for _, b := range boxes(meta) {
		var err error
		switch b.typ {
		case "pitm":
			c := cursor{b: b.body}
			if c.u8() == 0 {
				c.skip(3)
				hf.primary = uint32(c.u16())
			} else {
				c.skip(3)
				hf.primary = c.u32()
			}
		case "iinf":
			err = hf.parseIinf(b.body)
		case "iloc":
			err = hf.parseIloc(b.body)
		case "iprp":
			for _, p := range boxes(b.body) {
				switch p.typ {
				case "ipco":
					hf.props = boxes(p.body)
				case "ipma":
					if err = hf.parseIpma(p.body); err != nil {
						return nil, err
					}
				}
			}
		case "idat":
			hf.idat = b.body
		}
		if err != nil {
			return nil, err
		}
	}
	return hf, nil
}

// parseIinf reads the type of each item from its infe box (versions 2 and
// 3; earlier ones carry no type).
func (hf *heifFile) parseIinf(body []byte) error {
	c := cursor{b: body}
	if c.u8() == 0 {
		c.skip(3 + 2) // flags, entry_count
	} else {
		c.skip(3 + 4)
	}
	if c.bad {
		return nil
	}
	for _, e := range boxes(c.b) {
		if e.typ != "infe" {
			continue
		}
		c := cursor{b: e.body}
		version := c.u8()
		c.skip(3)
		var id uint32
		switch version {
		case 2:
			id = uint32(c.u16())
		case 3:
			id = c.u32()
		default:
			continue
		}
		c.skip(2) // item_protection_index
		typ := c.bytes(4)
		if c.bad {
			continue
		}
		it, err := hf.item(id)
		if err != nil {
			return err
		}
		it.typ = string(typ)
	}
	return nil
}

// parseIloc reads where each item's data lies, for every box version.
func (hf *heifFile) parseIloc(body []byte) error {
	c := cursor{b: body}
	version := c.u8()
	c.skip(3)
	if version > 2 {
		return nil
	}
	sizes := c.u16()
	offsetSize, lengthSize, baseSize := int(sizes>>12), int(sizes>>8&15), int(sizes>>4&15)
	// The spec has an extent_index in versions 1 and 2; libheif 1.15 reads
	// it in version 2 only, later versions in both, as here.
	indexSize := 0
	if version == 1 || version == 2 {
		indexSize = int(sizes & 15)
	}
	var count uint32
	if version < 2 {
		count = uint32(c.u16())
	} else {
		count = c.u32()
	}
	for i := uint32(0); i < count && !c.bad; i++ {
		var id uint32
		if version < 2 {
			id = uint32(c.u16())
		} else {
			id = c.u32()
		}
		method := uint16(0)
		if version >= 1 {
			method = c.u16() & 15
		}
		c.skip(2) // data_reference_index
		base := c.field(baseSize)
		n := int(c.u16())
		if n > maxItemExtents {
			return errors.New("too many extents in a heif item")
		}
		extents := make([]extent, 0, n)
		for range n {
			c.field(indexSize)
			off, length := c.field(offsetSize), c.field(lengthSize)
			if off > math.MaxUint64-base {
				off, base = math.MaxUint64, 0 // past any file: skipped when read
			}
			extents = append(extents, extent{offset: base + off, length: length})
		}
		if c.bad {
			break
		}
		it, err := hf.item(id)
		if err != nil {
			return err
		}
		it.method, it.extents = method, extents
	}
	return nil
}

// parseIpma reads which properties each item has, in their order.
func (hf *heifFile) parseIpma(body []byte) error {
	c := cursor{b: body}
	version := c.u8()
	c.skip(2)
	wide := c.u8()&1 != 0 // flags: 15-bit property indices rather than 7
	count := c.u32()
	for i := uint32(0); i < count && !c.bad; i++ {
		var id uint32
		if version < 1 {
			id = uint32(c.u16())
		} else {
			id = c.u32()
		}
		n := int(c.u8())
		props := make([]int, 0, n)
		for range n {
			if wide {
				props = append(props, int(c.u16()&0x7FFF))
			} else {
				props = append(props, int(c.u8()&0x7F))
			}
		}
		if c.bad {
			break
		}
		it, err := hf.item(id)
		if err != nil {
			return err
		}
		it.props = append(it.props, props...)
	}
	return nil
}

// prop returns the property ipma numbers index, if there is one.
func (hf *heifFile) prop(index int) (box, bool) {
	if index < 1 || index > len(hf.props) {
		return box{}, false
	}
	return hf.props[index-1], true
}

// shownSize is the size libheif reports for the primary item, which libvips
// takes as the size of the image: its ispe, then its clap and irot applied
// in ipma's order (libheif ignores those before the ispe, which overrides
// them here too). Without a primary item or an ispe of its own, the
// largest ispe of the file stands in for it, as before pitm and ipma were
// read, and the primary's clap and irot still apply. It fails on a clap
// libheif would refuse, or without any ispe.
func (hf *heifFile) shownSize() (int, int, bool) {
	w, h := 0, 0
	for _, p := range hf.props {
		if pw, ph, ok := ispeSize(p); ok && int64(pw)*int64(ph) > int64(w)*int64(h) {
			w, h = pw, ph
		}
	}
	var props []int
	if it, ok := hf.items[hf.primary]; ok {
		props = it.props
	}
	for _, i := range props {
		p, _ := hf.prop(i)
		var ok bool
		switch p.typ {
		case "ispe":
			if w, h, ok = ispeSize(p); !ok {
				return 0, 0, false
			}
		case "clap":
			if w, h, ok = clapSize(p.body); !ok {
				return 0, 0, false
			}
		case "irot":
			if len(p.body) >= 1 && p.body[0]&1 == 1 { // 90 or 270 degrees
				w, h = h, w
			}
		}
	}
	return w, h, w > 0 && h > 0
}

// ispeSize reads an ispe property.
func ispeSize(p box) (int, int, bool) {
	if p.typ != "ispe" || len(p.body) < 12 {
		return 0, 0, false
	}
	return int(binary.BigEndian.Uint32(p.body[4:8])), int(binary.BigEndian.Uint32(p.body[8:12])), true
}

// clapSize is a clean aperture's width and height, rationals rounded as
// libheif rounds them, which libheif refuses when a term is over 2^31-1
// or a denominator is zero.
func clapSize(body []byte) (int, int, bool) {
	if len(body) < 32 {
		return 0, 0, false
	}
	var v [8]int64
	for i := range v {
		v[i] = int64(binary.BigEndian.Uint32(body[4*i:]))
	}
	for _, i := range []int{0, 1, 2, 3, 5, 7} { // the horizontal and vertical offset numerators are signed
		if v[i] > math.MaxInt32 {
			return 0, 0, false
		}
	}
	if v[1] == 0 || v[3] == 0 || v[5] == 0 || v[7] == 0 {
		return 0, 0, false
	}
	round := func(num, den int64) int { return int((num + den/2) / den) }
	return round(v[0], v[1]), round(v[2], v[3]), true
}

// decodedSize is the largest picture a decoder makes for any item of the
// file, going by area: every ispe, the coded size of every hvcC and av1C,
// of the HEVC and AV1 data of every item, and the canvas of every grid and
// overlay. Every coded item's data is walked, as libheif gives it all to
// the decoder, which decodes a second picture as readily as the first;
// together the walks read at most the file's size.
//
// When no coded size can be found (no decoder configuration with one, no
// item data in reach, or data this parser reads otherwise than libheif),
// the ispe sizes alone decide, as before coded sizes were read: then a
// patched ispe still hides the coded size.
func (hf *heifFile) decodedSize(file io.ReaderAt, size int64) (int, int, error) {
	bw, bh := 0, 0
	grow := func(w, h int) {
		if int64(w)*int64(h) > int64(bw)*int64(bh) {
			bw, bh = w, h
		}
	}
	for _, p := range hf.props {
		switch p.typ {
		case "ispe":
			if w, h, ok := ispeSize(p); ok {
				grow(w, h)
			}
		case "hvcC":
			hvcCSizes(p.body, grow)
		case "av1C":
			if len(p.body) > 4 { // configOBUs follow 4 bytes of fields
				if err := av1Sizes(bufio.NewReader(bytes.NewReader(p.body[4:])), grow); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	ids := make([]uint32, 0, len(hf.items))
	for id := range hf.items {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the budget runs out at the same item every time
	budget := &budgetReader{left: size + int64(len(hf.idat))}
	br := bufio.NewReader(nil)
	for _, id := range ids {
		it := hf.items[id]
		data, ok := hf.itemData(it, file, size)
		if !ok {
			continue
		}
		budget.r = data
		br.Reset(budget)
		var err error
		switch it.typ {
		case "hvc1":
			err = hevcSizes(br, grow)
		case "av01":
			err = av1Sizes(br, grow)
		case "grid", "iovl":
			if w, h, ok := canvasSize(it.typ, br); ok {
				grow(w, h)
			}
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return bw, bh, nil
}

// itemData returns a reader of an item's data: its extents one after the
// other, each clipped to the file or idat, a zero length running to its
// end.
func (hf *heifFile) itemData(it *heifItem, file io.ReaderAt, size int64) (io.Reader, bool) {
	src, n := file, uint64(size)
	switch it.method {
	case 0:
	case 1:
		src, n = bytes.NewReader(hf.idat), uint64(len(hf.idat))
	default:
		return nil, false // data of another item: walked as that item
	}
	var parts []io.Reader
	for _, e := range it.extents {
		if e.offset >= n {
			continue
		}
		length := e.length
		if length == 0 || length > n-e.offset {
			length = n - e.offset
		}
		parts = append(parts, io.NewSectionReader(src, int64(e.offset), int64(length)))
	}
	return io.MultiReader(parts...), len(parts) > 0
}

// budgetReader reads from r while the budget shared by every item lasts.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errItemBudget
	}
	return n, err
}

// canvasSize reads the output size at the start of a grid or iovl item's
// data (ISO/IEC 23008-12 ImageGrid, ImageOverlay).
func canvasSize(typ string, r io.Reader) (int, int, bool) {
	head := make([]byte, 20)
	n, _ := io.ReadFull(r, head)
	c := cursor{b: head[:n]}
	c.skip(1) // version
	wide := c.u8()&1 != 0
	if typ == "grid" {
		c.skip(2) // rows_minus_one, columns_minus_one
	} else {
		c.skip(8) // canvas_fill_value
	}
	var w, h int
	if wide {
		w, h = int(c.u32()), int(c.u32())
	} else {
		w, h = int(c.u16()), int(c.u16())
	}
	return w, h, !c.bad
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

// cursor reads big-endian fields from a box; reading past the end marks it
// bad and yields zeros, so a parser checks once after a group of fields.
type cursor struct {
	b   []byte
	bad bool
}

// bytes returns the next n bytes, nil past the end.
func (c *cursor) bytes(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad, c.b = true, nil
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *cursor) skip(n int) { c.bytes(n) }

func (c *cursor) u8() uint8 {
	if b := c.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if b := c.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (c *cursor) u32() uint32 {
	if b := c.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if b := c.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// field reads an iloc field of size bytes. libheif reads 4 or 8 and takes
// any other size as absent (0), and so does this.
func (c *cursor) field(size int) uint64 {
	switch size {
	case 4:
		return uint64(c.u32())
	case 8:
		return c.u64()
	}
	return 0
}
