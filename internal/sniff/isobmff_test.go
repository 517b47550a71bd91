package sniff_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imagesvc/imagesvc/internal/sniff"
	"github.com/imagesvc/imagesvc/internal/testenv"
)

// vipsSave returns src saved by `vips copy` as out.<target>, where target
// may carry save options, such as "avif[strip]" (see testenv.VipsSave).
func vipsSave(t testing.TB, src []byte, target string) []byte {
	t.Helper()
	ext, opts, found := strings.Cut(target, "[")
	if found {
		opts = "[" + opts
	}
	return testenv.VipsSave(t, src, ext, opts)
}

// vipsHeaderSize is the size libvips (through libheif) reports for a file.
func vipsHeaderSize(t testing.TB, data []byte) (int, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.avif")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var size [2]int
	for i, field := range []string{"width", "height"} {
		out, err := exec.Command("vipsheader", "-f", field, path).Output()
		if err != nil {
			t.Fatalf("vipsheader -f %s: %v", field, err)
		}
		if size[i], err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
			t.Fatalf("vipsheader -f %s: %q", field, out)
		}
	}
	return size[0], size[1]
}

// ---- ISOBMFF boxes, written and patched

func isoBox(typ string, body ...[]byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(8+len(bytes.Join(body, nil))))
	return append(append(out, typ...), bytes.Join(body, nil)...)
}

func isoFullBox(typ string, version byte, flags uint32, body ...[]byte) []byte {
	return isoBox(typ, append([][]byte{binary.BigEndian.AppendUint32(nil, uint32(version)<<24|flags)}, body...)...)
}

func be16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// beN writes v in size bytes (0, 4 or 8), as iloc's fields.
func beN(v, size int) []byte {
	switch size {
	case 4:
		return be32(v)
	case 8:
		return binary.BigEndian.AppendUint64(nil, uint64(v))
	}
	return nil
}

type testBox struct {
	typ  string
	body []byte // aliases the file, so writes to it patch the file
}

// testBoxes splits data into boxes (32-bit sizes only, as libheif writes).
func testBoxes(data []byte) []testBox {
	var out []testBox
	for len(data) >= 8 {
		n := int(binary.BigEndian.Uint32(data))
		if n < 8 || n > len(data) {
			break
		}
		out = append(out, testBox{string(data[4:8]), data[8:n]})
		data = data[n:]
	}
	return out
}

// boxAt returns the body of the box at path, such as "meta/iprp/ipco",
// aliasing data; the version and flags of meta are skipped.
func boxAt(t testing.TB, data []byte, path string) []byte {
	t.Helper()
	for _, typ := range strings.Split(path, "/") {
		found := false
		for _, b := range testBoxes(data) {
			if b.typ == typ {
				data, found = b.body, true
				if typ == "meta" {
					data = data[4:]
				}
				break
			}
		}
		if !found {
			t.Fatalf("no %s box on the path %s", typ, path)
		}
	}
	return data
}

// patchISPE makes every ispe of a file claim w x h; sizes do not change, so
// nothing else moves.
func patchISPE(t testing.TB, file []byte, w, h int) []byte {
	t.Helper()
	out := bytes.Clone(file)
	n := 0
	for _, p := range testBoxes(boxAt(t, out, "meta/iprp/ipco")) {
		if p.typ == "ispe" {
			binary.BigEndian.PutUint32(p.body[4:], uint32(w))
			binary.BigEndian.PutUint32(p.body[8:], uint32(h))
			n++
		}
	}
	if n == 0 {
		t.Fatal("no ispe to patch")
	}
	return out
}

// ---- properties

func ispeProp(w, h int) []byte { return isoFullBox("ispe", 0, 0, be32(w), be32(h)) }

// clapProp is a clean aperture of wn/wd x hn/hd, centred.
func clapProp(wn, wd, hn, hd int) []byte { return clapOffsetProp(wn, wd, hn, hd, 0, 1, 0, 1) }

// clapOffsetProp is a clean aperture with its offset from the centre.
func clapOffsetProp(wn, wd, hn, hd, xn, xd, yn, yd int) []byte {
	return isoBox("clap", be32(wn), be32(wd), be32(hn), be32(hd), be32(xn), be32(xd), be32(yn), be32(yd))
}

func irotProp(degrees int) []byte { return isoBox("irot", []byte{byte(degrees / 90)}) }

// hvcCProp is an hvcC record holding nals in one array.
func hvcCProp(nals ...[]byte) []byte {
	rec := []byte{1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F}
	rec = append(rec, 1, 0x80|33)
	rec = append(rec, be16(len(nals))...)
	for _, n := range nals {
		rec = append(append(rec, be16(len(n))...), n...)
	}
	return isoBox("hvcC", rec)
}

// av1CProp is an av1C whose configOBUs are obus.
func av1CProp(obus ...[]byte) []byte {
	return isoBox("av1C", append([]byte{0x81, 0x00, 0x0C, 0x00}, bytes.Join(obus, nil)...))
}

// ---- HEVC and AV1 headers

// bitWriter writes a bitstream most significant bit first.
type bitWriter struct {
	b []byte
	n int
}

func (w *bitWriter) put(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *bitWriter) flag(v bool) {
	if v {
		w.put(1, 1)
	} else {
		w.put(0, 1)
	}
}

// golomb writes an Exp-Golomb number, which is also AV1's uvlc.
func (w *bitWriter) golomb(v uint64) {
	zeros := bits.Len64(v+1) - 1
	w.put(0, zeros)
	w.put(v+1, zeros+1)
}

// trailing ends the bitstream with a stop bit and alignment zeros.
func (w *bitWriter) trailing() []byte {
	w.put(1, 1)
	for w.n%8 != 0 {
		w.put(0, 1)
	}
	return w.b
}

// escapeRBSP inserts the emulation-prevention bytes a NAL unit needs.
func escapeRBSP(rbsp []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range rbsp {
		if zeros >= 2 && c <= 3 {
			out, zeros = append(out, 3), 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

type spsOpts struct {
	w, h       int
	subLayers  int    // sps_max_sub_layers_minus1
	subProfile []bool // sub_layer_profile_present_flag per sub-layer
	subLevel   []bool // sub_layer_level_present_flag per sub-layer
	chroma     int    // chroma_format_idc
	crop       [4]int // conformance window offsets: left, right, top, bottom
}

// spsNAL is an HEVC SPS NAL unit with its header, escaped. The general
// profile's zero flags make it need emulation prevention; the sub-layer
// fields are all ones, so a parser that skips them wrongly reads other
// sizes.
func spsNAL(o spsOpts) []byte {
	var w bitWriter
	w.put(0, 4) // sps_video_parameter_set_id
	w.put(uint64(o.subLayers), 3)
	w.put(1, 1) // sps_temporal_id_nesting_flag
	w.put(0x01, 8)
	w.put(0x60000000, 32) // general_profile_compatibility_flags
	w.put(0x9, 4)         // progressive, interlaced, non-packed, frame-only
	w.put(0, 44)
	w.put(93, 8) // general_level_idc
	for i := range o.subLayers {
		w.flag(o.subProfile[i])
		w.flag(o.subLevel[i])
	}
	if o.subLayers > 0 {
		w.put(0, 2*(8-o.subLayers))
	}
	for i := range o.subLayers {
		if o.subProfile[i] {
			w.put(1<<56-1, 56)
			w.put(1<<32-1, 32)
		}
		if o.subLevel[i] {
			w.put(0xFF, 8)
		}
	}
	w.golomb(0) // sps_seq_parameter_set_id
	w.golomb(uint64(o.chroma))
	if o.chroma == 3 {
		w.put(1, 1) // separate_colour_plane_flag
	}
	w.golomb(uint64(o.w))
	w.golomb(uint64(o.h))
	w.flag(o.crop != [4]int{}) // conformance_window_flag
	if o.crop != [4]int{} {
		for _, c := range o.crop {
			w.golomb(uint64(c))
		}
	}
	// The rest of an SPS does not matter here.
	return append([]byte{33 << 1, 0x01}, escapeRBSP(w.trailing())...)
}

type seqOp struct {
	level        int
	decoderModel bool // decoder_model_present_for_this_op
	displayDelay bool // initial_display_delay_present_for_this_op
}

type seqOpts struct {
	reduced        bool
	timing         bool
	equalInterval  bool
	ticks          uint64
	decoderModel   bool
	delayBits      int
	initialDisplay bool
	ops            []seqOp
	wBits, hBits   int
	w, h           int
}

// seqHeaderOBU is an AV1 sequence header OBU with a size field. Skipped
// fields are ones where they can be, so a parser that skips them wrongly
// reads other sizes.
func seqHeaderOBU(o seqOpts) []byte {
	var w bitWriter
	w.put(0, 3) // seq_profile
	w.put(1, 1) // still_picture
	w.flag(o.reduced)
	if o.reduced {
		w.put(31, 5)
	} else {
		w.flag(o.timing)
		if o.timing {
			w.put(1<<32-1, 32)
			w.put(1<<32-1, 32)
			w.flag(o.equalInterval)
			if o.equalInterval {
				w.golomb(o.ticks)
			}
			w.flag(o.decoderModel)
			if o.decoderModel {
				w.put(uint64(o.delayBits-1), 5)
				w.put(1<<32-1, 32)
				w.put(31, 5)
				w.put(31, 5)
			}
		}
		w.flag(o.initialDisplay)
		w.put(uint64(len(o.ops)-1), 5)
		for _, op := range o.ops {
			w.put(0xFFF, 12) // operating_point_idc
			w.put(uint64(op.level), 5)
			if op.level > 7 {
				w.put(1, 1)
			}
			if o.decoderModel {
				w.flag(op.decoderModel)
				if op.decoderModel {
					w.put(1<<o.delayBits-1, o.delayBits)
					w.put(1<<o.delayBits-1, o.delayBits)
					w.put(1, 1)
				}
			}
			if o.initialDisplay {
				w.flag(op.displayDelay)
				if op.displayDelay {
					w.put(15, 4)
				}
			}
		}
	}
	w.put(uint64(o.wBits-1), 4)
	w.put(uint64(o.hBits-1), 4)
	w.put(uint64(o.w-1), o.wBits)
	w.put(uint64(o.h-1), o.hBits)
	payload := w.trailing()
	return append([]byte{1<<3 | 2, byte(len(payload))}, payload...)
}

// temporalDelimiter is the OBU an AVIF item's data starts with.
var temporalDelimiter = []byte{2<<3 | 2, 0}

// ---- whole files

type testItem struct {
	id     uint32
	typ    string
	props  []int    // indices into the file's props, from 1
	data   [][]byte // one slice per extent
	inIdat bool     // construction_method 1
}

type ilocLayout struct{ version, offsetSize, lengthSize, baseSize, indexSize int }

// heifFile describes a HEIF or AVIF file for heifBytes.
type heifFile struct {
	brand    string // "avif" or "heic"
	primary  uint32 // 0: no pitm
	props    [][]byte
	items    []testItem
	iloc     ilocLayout
	wideIpma bool
}

// heifBytes writes the file: ftyp, a meta box with pitm, iinf, iloc, iprp
// and idat, then an mdat with the data of the items not in idat.
func heifBytes(f heifFile) []byte {
	ftyp := isoBox("ftyp", []byte(f.brand), be32(0), []byte("mif1"), []byte(f.brand))
	type place struct{ off, n int }
	where := map[uint32][]place{}
	var mdat, idat []byte
	for _, it := range f.items {
		for _, d := range it.data {
			if it.inIdat {
				where[it.id] = append(where[it.id], place{len(idat), len(d)})
				idat = append(idat, d...)
			} else {
				where[it.id] = append(where[it.id], place{len(mdat), len(d)})
				mdat = append(mdat, d...)
			}
		}
	}
	l := f.iloc
	if l == (ilocLayout{}) {
		l = ilocLayout{version: 1, offsetSize: 4, lengthSize: 4}
	}
	meta := func(mdatBody int) []byte {
		var infe [][]byte
		for _, it := range f.items {
			infe = append(infe, isoFullBox("infe", 2, 0, be16(int(it.id)), be16(0), []byte(it.typ), []byte{0}))
		}
		iloc := be16(l.offsetSize<<12 | l.lengthSize<<8 | l.baseSize<<4 | l.indexSize)
		var located []testItem
		for _, it := range f.items {
			if len(it.data) > 0 {
				located = append(located, it)
			}
		}
		if l.version < 2 {
			iloc = append(iloc, be16(len(located))...)
		} else {
			iloc = append(iloc, be32(len(located))...)
		}
		for _, it := range located {
			if l.version < 2 {
				iloc = append(iloc, be16(int(it.id))...)
			} else {
				iloc = append(iloc, be32(int(it.id))...)
			}
			origin := mdatBody
			if it.inIdat {
				origin = 0
				iloc = append(iloc, be16(1)...)
			} else if l.version >= 1 {
				iloc = append(iloc, be16(0)...)
			}
			iloc = append(iloc, be16(0)...) // data_reference_index
			base := 0
			if l.baseSize > 0 {
				base = origin + where[it.id][0].off // offsets count from the first extent
			}
			iloc = append(iloc, beN(base, l.baseSize)...)
			iloc = append(iloc, be16(len(where[it.id]))...)
			for _, p := range where[it.id] {
				if l.version >= 1 {
					iloc = append(iloc, beN(0, l.indexSize)...)
				}
				iloc = append(iloc, beN(origin+p.off-base, l.offsetSize)...)
				iloc = append(iloc, beN(p.n, l.lengthSize)...)
			}
		}
		var ipma []byte
		ipma = append(ipma, be32(len(f.items))...)
		for _, it := range f.items {
			ipma = append(append(ipma, be16(int(it.id))...), byte(len(it.props)))
			for _, p := range it.props {
				if f.wideIpma {
					ipma = append(ipma, be16(0x8000|p)...)
				} else {
					ipma = append(ipma, byte(0x80|p))
				}
			}
		}
		flags := uint32(0)
		if f.wideIpma {
			flags = 1
		}
		children := [][]byte{isoFullBox("hdlr", 0, 0, be32(0), []byte("pict"), make([]byte, 12), []byte{0})}
		if f.primary != 0 {
			children = append(children, isoFullBox("pitm", 0, 0, be16(int(f.primary))))
		}
		children = append(children,
			isoFullBox("iinf", 0, 0, append([][]byte{be16(len(infe))}, infe...)...),
			isoFullBox("iloc", byte(l.version), 0, iloc),
			isoBox("iprp", isoBox("ipco", f.props...), isoFullBox("ipma", 0, flags, ipma)))
		if len(idat) > 0 {
			children = append(children, isoBox("idat", idat))
		}
		return isoFullBox("meta", 0, 0, children...)
	}
	m := meta(0)
	m = meta(len(ftyp) + len(m) + 8) // the offsets' sizes are fixed, so the meta box keeps its length
	return bytes.Join([][]byte{ftyp, m, isoBox("mdat", mdat)}, nil)
}

// avifWith is an AVIF of one av01 item with the given properties and data.
func avifWith(props [][]byte, data ...[]byte) []byte {
	idx := make([]int, len(props))
	for i := range props {
		idx[i] = i + 1
	}
	return heifBytes(heifFile{brand: "avif", primary: 1, props: props, items: []testItem{{id: 1, typ: "av01", props: idx, data: data}}})
}

// heicWith is a HEIC of one hvc1 item with the given properties and data.
func heicWith(props [][]byte, data ...[]byte) []byte {
	idx := make([]int, len(props))
	for i := range props {
		idx[i] = i + 1
	}
	return heifBytes(heifFile{brand: "heic", primary: 1, props: props, items: []testItem{{id: 1, typ: "hvc1", props: idx, data: data}}})
}

// nalUnits puts each NAL unit behind a 4-byte length, as in item data.
func nalUnits(nals ...[]byte) []byte {
	var out []byte
	for _, n := range nals {
		out = append(append(out, be32(len(n))...), n...)
	}
	return out
}

func sniffSizes(t *testing.T, data []byte) sniff.Header {
	t.Helper()
	h, err := sniff.Sniff(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Sniff: %v", err)
	}
	return h
}

// ---- tests

func TestSniffHEIFFromVips(t *testing.T) {
	const w, h = 640, 480
	src := testenv.PNG(t, w, h, 255)
	for _, target := range []string{"avif", "heic"} {
		file := vipsSave(t, src, target)
		t.Run(target, func(t *testing.T) {
			if target == "avif" {
				if av1C := boxAt(t, file, "meta/iprp/ipco/av1C"); len(av1C) != 4 {
					t.Fatalf("vips wrote an av1C with %d bytes of configOBUs; the test wants none, so that the coded size comes from the item data", len(av1C)-4)
				}
			}
			got := sniffSizes(t, file)
			if got.Width != w || got.Height != h || got.DecodedWidth != w || got.DecodedHeight != h {
				t.Errorf("Sniff = %dx%d decoded %dx%d, want %dx%d both", got.Width, got.Height, got.DecodedWidth, got.DecodedHeight, w, h)
			}
			patched := patchISPE(t, file, 100, 100)
			got = sniffSizes(t, patched)
			if got.DecodedWidth != w || got.DecodedHeight != h {
				t.Errorf("Sniff(ispe patched to 100x100).Decoded = %dx%d, want the coded %dx%d", got.DecodedWidth, got.DecodedHeight, w, h)
			}
			if _, err := sniff.Inspect(bytes.NewReader(patched), sniff.DefaultAcceptedTypes, 200_000); !errors.Is(err, sniff.ErrTooManyPixels) {
				t.Errorf("Inspect(ispe patched to 100x100, coded 640x480, limit 200000) = %v, want ErrTooManyPixels", err)
			}
			if _, err := sniff.Inspect(bytes.NewReader(file), sniff.DefaultAcceptedTypes, w*h); err != nil {
				t.Errorf("Inspect(640x480, limit 640x480) = %v, want nil", err)
			}
		})
	}
	t.Run("HEICGrid", func(t *testing.T) {
		// libheif writes an odd size as a grid of one even tile: the grid
		// canvas sits in idat and the tile's SPS says 336x224.
		file := vipsSave(t, testenv.PNG(t, 333, 221, 255), "heic")
		grid := boxAt(t, file, "meta/idat")
		if len(grid) != 8 || binary.BigEndian.Uint16(grid[4:]) != 333 {
			t.Fatalf("idat = %x, want a grid of 333x221 with 16-bit sizes", grid)
		}
		got := sniffSizes(t, file)
		if got.Width != 333 || got.Height != 221 {
			t.Errorf("Sniff = %dx%d, want 333x221", got.Width, got.Height)
		}
		patched := patchISPE(t, file, 100, 100)
		binary.BigEndian.PutUint16(boxAt(t, patched, "meta/idat")[4:], 100)
		binary.BigEndian.PutUint16(boxAt(t, patched, "meta/idat")[6:], 100)
		got = sniffSizes(t, patched)
		if got.DecodedWidth < 334 || got.DecodedHeight < 222 {
			t.Errorf("Sniff(ispe and grid patched to 100x100).Decoded = %dx%d, want the coded size of the tile, at least 334x222", got.DecodedWidth, got.DecodedHeight)
		}
		if _, err := sniff.Inspect(bytes.NewReader(patched), sniff.DefaultAcceptedTypes, 50_000); !errors.Is(err, sniff.ErrTooManyPixels) {
			t.Errorf("Inspect(ispe and grid patched, limit 50000) = %v, want ErrTooManyPixels", err)
		}
	})
}

// vipsAVIF is a stripped 640x480 AVIF from vips, cut into the properties
// and the one item's data that heifBytes can put together again.
func vipsAVIF(t *testing.T) (colr, av1C, pixi, data []byte) {
	file := vipsSave(t, testenv.PNG(t, 640, 480, 255), "avif[strip]")
	props := map[string][]byte{}
	for _, p := range testBoxes(boxAt(t, file, "meta/iprp/ipco")) {
		props[p.typ] = isoBox(p.typ, p.body)
	}
	if len(testBoxes(boxAt(t, file, "meta/iinf")[6:])) != 1 {
		t.Fatal("vips wrote more than one item into a stripped AVIF")
	}
	return props["colr"], props["av1C"], props["pixi"], boxAt(t, file, "mdat")
}

// TestHEIFShownSize checks the size Sniff reports against the one libvips
// reports through libheif, on files built with vips' AV1 data and hand-made
// clap and irot properties.
func TestHEIFShownSize(t *testing.T) {
	colr, av1C, pixi, data := vipsAVIF(t)
	base := [][]byte{colr, av1C, ispeProp(640, 480), pixi}
	tests := []struct {
		name  string
		props [][]byte
		w, h  int
	}{
		{"Plain", base, 640, 480},
		{"Clap", append(base, clapProp(600, 1, 401, 1)), 600, 401},
		{"ClapRational", append(base, clapProp(1201, 2, 803, 2)), 601, 402},
		{"Irot90", append(base, irotProp(90)), 480, 640},
		{"Irot180", append(base, irotProp(180)), 640, 480},
		{"Irot270", append(base, irotProp(270)), 480, 640},
		{"ClapThenIrot", append(base, clapProp(600, 1, 401, 1), irotProp(90)), 401, 600},
		{"ClapOffCentre", append(base, clapOffsetProp(300, 1, 200, 1, -100, 1, 50, 1)), 300, 200},
		{"IrotThenClap", append(base, irotProp(90), clapProp(400, 1, 600, 1)), 400, 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := avifWith(tt.props, data)
			if w, h := vipsHeaderSize(t, file); w != tt.w || h != tt.h {
				t.Fatalf("libvips reports %dx%d, the test expects %dx%d", w, h, tt.w, tt.h)
			}
			got := sniffSizes(t, file)
			if got.Width != tt.w || got.Height != tt.h {
				t.Errorf("Sniff = %dx%d, want %dx%d as libvips", got.Width, got.Height, tt.w, tt.h)
			}
			if got.Pixels() != 640*480 {
				t.Errorf("Sniff.Pixels() = %d, want %d: the limit is on the decoded picture, before any crop", got.Pixels(), 640*480)
			}
		})
	}
}

func TestHEIFPrimaryItem(t *testing.T) {
	props := [][]byte{ispeProp(800, 534), clapProp(800, 1, 533, 1), ispeProp(1000, 1000), irotProp(90), ispeProp(160, 120)}
	items := []testItem{
		{id: 1, typ: "hvc1", props: []int{1, 2}}, // the image: 800x534, cropped to 800x533
		{id: 2, typ: "hvc1", props: []int{3, 4}}, // a larger auxiliary image, turned
		{id: 7, typ: "hvc1", props: []int{5}},    // a thumbnail
		{id: 9, typ: "hvc1", props: []int{2, 5}}, // clap before ispe: libheif ignores it
	}
	tests := []struct {
		name    string
		primary uint32
		wide    bool
		w, h    int
	}{
		{"First", 1, false, 800, 533},
		{"Second", 2, false, 1000, 1000},
		{"Thumbnail", 7, false, 160, 120},
		{"ClapBeforeISPE", 9, false, 160, 120},
		{"WideIpma", 1, true, 800, 533},
		{"NoPitmTakesTheLargestISPE", 0, false, 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sniffSizes(t, heifBytes(heifFile{brand: "heic", primary: tt.primary, props: props, items: items, wideIpma: tt.wide}))
			if got.Width != tt.w || got.Height != tt.h {
				t.Errorf("Sniff = %dx%d, want %dx%d", got.Width, got.Height, tt.w, tt.h)
			}
			if got.DecodedWidth != 1000 || got.DecodedHeight != 1000 {
				t.Errorf("Sniff.Decoded = %dx%d, want the largest ispe, 1000x1000", got.DecodedWidth, got.DecodedHeight)
			}
		})
	}
	t.Run("PrimaryWithoutISPE", func(t *testing.T) {
		items := []testItem{{id: 1, typ: "hvc1", props: []int{2, 4}}, {id: 2, typ: "hvc1", props: []int{1}}}
		got := sniffSizes(t, heifBytes(heifFile{brand: "heic", primary: 1, props: props, items: items}))
		if got.Width != 533 || got.Height != 800 {
			t.Errorf("Sniff = %dx%d, want the largest ispe cropped and turned by the primary's clap and irot, 533x800", got.Width, got.Height)
		}
	})
	for name, clap := range map[string][]byte{
		"ZeroDenominator":           clapProp(800, 0, 533, 1),
		"ZeroHeightDenominator":     clapProp(800, 1, 533, 0),
		"ZeroOffsetDenominator":     clapOffsetProp(800, 1, 533, 1, 0, 1, 0, 0),
		"ZeroXOffsetDenominator":    clapOffsetProp(800, 1, 533, 1, 0, 0, 0, 1),
		"Over2^31":                  clapProp(1<<31, 1, 533, 1),
		"DenominatorOver2^31":       clapProp(800, 1, 533, 1<<31),
		"OffsetDenominatorOver2^31": clapOffsetProp(800, 1, 533, 1, 0, 1, 0, 1<<31),
		"RoundsToZero":              clapProp(1, 3, 533, 1),
		"Short":                     isoBox("clap", make([]byte, 31)),
	} {
		t.Run("ErrUnsupported_Clap"+name, func(t *testing.T) {
			file := heicWith([][]byte{ispeProp(800, 534), clap})
			if h, err := sniff.Sniff(bytes.NewReader(file)); !errors.Is(err, sniff.ErrUnsupported) {
				t.Errorf("Sniff = %+v, %v, want ErrUnsupported", h, err)
			}
		})
	}
}

func TestHEVCCodedSize(t *testing.T) {
	tests := []struct {
		name         string
		sps          spsOpts
		wantW, wantH int // 0: the coded size
	}{
		{"Plain", spsOpts{w: 4032, h: 3024, chroma: 1}, 0, 0},
		// 7072x7072 coded, cropped to 7070x7066 (offsets in chroma samples).
		{"ConformanceWindow420", spsOpts{w: 7072, h: 7072, chroma: 1, crop: [4]int{0, 1, 1, 2}}, 7070, 7066},
		{"ConformanceWindow444", spsOpts{w: 648, h: 488, chroma: 3, crop: [4]int{0, 7, 0, 7}}, 641, 481},
		{"Chroma444", spsOpts{w: 4032, h: 3024, chroma: 3}, 0, 0},
		{"SubLayers", spsOpts{w: 1920, h: 1088, chroma: 1, subLayers: 2, subProfile: []bool{true, false}, subLevel: []bool{true, true}}, 0, 0},
		{"SixSubLayers", spsOpts{w: 640, h: 480, chroma: 2, subLayers: 6, subProfile: []bool{true, true, false, true, false, true}, subLevel: []bool{false, true, true, false, false, true}}, 0, 0},
		{"SubLayersNothingPresent", spsOpts{w: 8192, h: 8, chroma: 0, subLayers: 3, subProfile: make([]bool, 3), subLevel: make([]bool, 3)}, 0, 0},
	}
	for _, tt := range tests {
		nal := spsNAL(tt.sps)
		if !bytes.Contains(nal, []byte{0, 0, 3}) {
			t.Fatalf("%s: the SPS needs no emulation prevention; the test proves less", tt.name)
		}
		for _, where := range []string{"hvcC", "ItemData"} {
			t.Run(tt.name+"In"+where, func(t *testing.T) {
				file := heicWith([][]byte{hvcCProp(nal), ispeProp(100, 100)})
				if where == "ItemData" {
					vps := []byte{32 << 1, 1, 0x0C, 0x01}
					file = heicWith([][]byte{hvcCProp(), ispeProp(100, 100)}, nalUnits(vps, nal, []byte{19 << 1, 1, 0xAF}))
				}
				got := sniffSizes(t, file)
				wantW, wantH := tt.sps.w, tt.sps.h
				if tt.wantW != 0 {
					wantW, wantH = tt.wantW, tt.wantH
				}
				if got.DecodedWidth != wantW || got.DecodedHeight != wantH {
					t.Errorf("Sniff.Decoded = %dx%d, want %dx%d", got.DecodedWidth, got.DecodedHeight, wantW, wantH)
				}
				if got.Width != 100 || got.Height != 100 {
					t.Errorf("Sniff = %dx%d, want what the ispe says, 100x100", got.Width, got.Height)
				}
			})
		}
	}
	t.Run("EmptyNALUnitsFirst", func(t *testing.T) {
		sps := spsNAL(spsOpts{w: 10000, h: 10000, chroma: 1})
		file := heicWith([][]byte{hvcCProp(), ispeProp(64, 64)}, nalUnits(nil, []byte{0x40}, sps))
		if got := sniffSizes(t, file); got.DecodedWidth != 10000 {
			t.Errorf("Sniff.Decoded = %dx%d, want 10000x10000", got.DecodedWidth, got.DecodedHeight)
		}
	})
	t.Run("SecondPictureInItemData", func(t *testing.T) {
		// libde265 decodes every picture libheif hands it: an SPS after
		// the first slice counts too.
		small, large := spsNAL(spsOpts{w: 64, h: 64, chroma: 1}), spsNAL(spsOpts{w: 10000, h: 10000, chroma: 1})
		slice := []byte{19 << 1, 1, 0xAF, 0x00, 0x10}
		file := heicWith([][]byte{hvcCProp(small), ispeProp(64, 64)}, nalUnits(slice, large, slice))
		if got := sniffSizes(t, file); got.DecodedWidth != 10000 {
			t.Errorf("Sniff.Decoded = %dx%d, want 10000x10000", got.DecodedWidth, got.DecodedHeight)
		}
	})
}

func TestAV1CodedSize(t *testing.T) {
	tests := []struct {
		name string
		seq  seqOpts
	}{
		{"Reduced", seqOpts{reduced: true, wBits: 16, hBits: 16, w: 4032, h: 3024}},
		{"OneOperatingPoint", seqOpts{ops: []seqOp{{level: 8}}, wBits: 13, hBits: 12, w: 5000, h: 4000}},
		{"Timing", seqOpts{timing: true, ops: []seqOp{{level: 3}}, wBits: 16, hBits: 16, w: 1000, h: 700}},
		{"TimingEqualInterval", seqOpts{timing: true, equalInterval: true, ticks: 1234567, ops: []seqOp{{level: 3}}, wBits: 16, hBits: 16, w: 999, h: 701}},
		{"DecoderModel", seqOpts{timing: true, decoderModel: true, delayBits: 23, ops: []seqOp{{level: 9, decoderModel: true}, {level: 2}}, wBits: 15, hBits: 14, w: 3001, h: 2002}},
		{"InitialDisplayDelay", seqOpts{initialDisplay: true, ops: []seqOp{{level: 12, displayDelay: true}, {level: 1}, {level: 31, displayDelay: true}}, wBits: 12, hBits: 12, w: 4096, h: 2048}},
		{"Everything", seqOpts{timing: true, equalInterval: true, ticks: 0, decoderModel: true, delayBits: 32, initialDisplay: true,
			ops: []seqOp{{level: 8, decoderModel: true, displayDelay: true}, {level: 7, decoderModel: true}, {level: 15, displayDelay: true}}, wBits: 16, hBits: 16, w: 65536, h: 2}},
	}
	for _, tt := range tests {
		obu := seqHeaderOBU(tt.seq)
		for _, where := range []string{"ConfigOBUs", "ItemData"} {
			t.Run(tt.name+"In"+where, func(t *testing.T) {
				file := avifWith([][]byte{av1CProp(obu), ispeProp(100, 100)})
				if where == "ItemData" {
					file = avifWith([][]byte{av1CProp(), ispeProp(100, 100)}, bytes.Join([][]byte{temporalDelimiter, obu, {6<<3 | 2, 3, 1, 2, 3}}, nil))
				}
				got := sniffSizes(t, file)
				if got.DecodedWidth != tt.seq.w || got.DecodedHeight != tt.seq.h {
					t.Errorf("Sniff.Decoded = %dx%d, want %dx%d", got.DecodedWidth, got.DecodedHeight, tt.seq.w, tt.seq.h)
				}
			})
		}
	}
	big := seqHeaderOBU(seqOpts{reduced: true, wBits: 14, hBits: 14, w: 10000, h: 10000})
	for name, data := range map[string][]byte{
		"AfterMetadata":      bytes.Join([][]byte{temporalDelimiter, {5<<3 | 2, 4, 1, 2, 3, 4}, big}, nil),
		"WithExtensionByte":  bytes.Join([][]byte{temporalDelimiter, {big[0] | 4, 0x20}, big[1:]}, nil),
		"WithoutSizeField":   bytes.Join([][]byte{temporalDelimiter, {big[0] &^ 2}, big[2:]}, nil),
		"LongLEB128":         bytes.Join([][]byte{temporalDelimiter, {big[0], big[1] | 0x80, 0x80, 0x80, 0x00}, big[2:]}, nil),
		"AfterTheFirstFrame": bytes.Join([][]byte{temporalDelimiter, seqHeaderOBU(seqOpts{reduced: true, wBits: 8, hBits: 8, w: 64, h: 64}), {6<<3 | 2, 2, 0, 0}, big}, nil),
	} {
		t.Run("ItemData"+name, func(t *testing.T) {
			got := sniffSizes(t, avifWith([][]byte{av1CProp(), ispeProp(100, 100)}, data))
			if got.DecodedWidth != 10000 || got.DecodedHeight != 10000 {
				t.Errorf("Sniff.Decoded = %dx%d, want 10000x10000", got.DecodedWidth, got.DecodedHeight)
			}
		})
	}
	t.Run("NoCodedSizeKeepsISPE", func(t *testing.T) {
		got := sniffSizes(t, avifWith([][]byte{av1CProp(), ispeProp(300, 200)}, temporalDelimiter))
		if got.Width != 300 || got.Height != 200 || got.Pixels() != 300*200 {
			t.Errorf("Sniff = %+v, want 300x200 from the ispe alone", got)
		}
	})
}

// TestItemLocation puts the only sequence header of a 10000x10000 AVIF in
// its item data, located by every form of iloc.
func TestItemLocation(t *testing.T) {
	seq := seqHeaderOBU(seqOpts{reduced: true, wBits: 14, hBits: 14, w: 10000, h: 10000})
	data := bytes.Join([][]byte{temporalDelimiter, seq, {6<<3 | 2, 3, 1, 2, 3}}, nil)
	props := [][]byte{av1CProp(), ispeProp(100, 100)}
	thumb := testItem{id: 2, typ: "av01", props: []int{2}, data: [][]byte{bytes.Join([][]byte{temporalDelimiter, seqHeaderOBU(seqOpts{reduced: true, wBits: 8, hBits: 8, w: 100, h: 100})}, nil)}}
	tests := []struct {
		name   string
		layout ilocLayout
		split  bool // the data in three extents, cut inside the sequence header
		inIdat bool
	}{
		{"Version0", ilocLayout{0, 4, 4, 0, 0}, false, false},
		{"Version0BaseOffset", ilocLayout{0, 4, 4, 4, 0}, true, false},
		{"Version1", ilocLayout{1, 4, 4, 0, 0}, true, false},
		{"Version1EightByteFields", ilocLayout{1, 8, 8, 8, 0}, true, false},
		{"Version1ExtentIndex", ilocLayout{1, 4, 4, 0, 4}, true, false},
		{"Version2", ilocLayout{2, 4, 4, 0, 0}, true, false},
		{"Version2ExtentIndex8", ilocLayout{2, 8, 4, 4, 8}, true, false},
		{"BaseOffsetOnly", ilocLayout{1, 0, 4, 8, 0}, false, false},
		{"Idat", ilocLayout{1, 4, 4, 0, 0}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extents := [][]byte{data}
			if tt.split {
				cut := len(temporalDelimiter) + 3
				extents = [][]byte{data[:cut], data[cut : cut+2], data[cut+2:]}
			}
			file := heifBytes(heifFile{brand: "avif", primary: 1, props: props, iloc: tt.layout, items: []testItem{
				thumb, {id: 1, typ: "av01", props: []int{1, 2}, data: extents, inIdat: tt.inIdat},
			}})
			for name, r := range map[string]io.Reader{"ReaderAt": bytes.NewReader(file), "Stream": struct{ io.Reader }{bytes.NewReader(file)}} {
				h, err := sniff.Sniff(r)
				if err != nil || h.DecodedWidth != 10000 || h.DecodedHeight != 10000 {
					t.Errorf("Sniff(%s) = decoded %dx%d, %v, want 10000x10000", name, h.DecodedWidth, h.DecodedHeight, err)
				}
			}
		})
	}
	t.Run("ZeroLengthRunsToTheEnd", func(t *testing.T) {
		file := heifBytes(heifFile{brand: "avif", primary: 1, props: props, iloc: ilocLayout{1, 4, 0, 0, 0}, items: []testItem{
			{id: 1, typ: "av01", props: []int{1, 2}, data: [][]byte{data}},
		}})
		if h := sniffSizes(t, file); h.DecodedWidth != 10000 {
			t.Errorf("Sniff = decoded %dx%d, want 10000x10000", h.DecodedWidth, h.DecodedHeight)
		}
	})
	t.Run("FarPastTheHeaderLimit", func(t *testing.T) {
		// 5 MiB of padding between the meta box and the item data: a
		// spooled upload is read at the offset; a stream is read only up to
		// the header limit.
		file := avifWith(props, data)
		end := 8 + len(boxAt(t, file, "ftyp")) + 12 + len(boxAt(t, file, "meta"))
		padded := bytes.Join([][]byte{file[:end], isoBox("free", make([]byte, 5<<20)), file[end:]}, nil)
		iloc := boxAt(t, padded, "meta/iloc")
		off := len(iloc) - 8 // version 1, one item, one extent: its offset and length end the box
		binary.BigEndian.PutUint32(iloc[off:], binary.BigEndian.Uint32(iloc[off:])+8+5<<20)
		if h := sniffSizes(t, padded); h.DecodedWidth != 10000 {
			t.Errorf("Sniff(bytes.Reader) = decoded %dx%d, want 10000x10000", h.DecodedWidth, h.DecodedHeight)
		}
		h, err := sniff.Sniff(struct{ io.Reader }{bytes.NewReader(padded)})
		if err != nil || h.Pixels() != 100*100 {
			t.Errorf("Sniff(stream) = %+v, %v, want the ispe's 100x100: the data is out of reach", h, err)
		}
	})
}

func TestHEIFCanvas(t *testing.T) {
	grid := func(flags byte, w, h int) []byte {
		if flags&1 != 0 {
			return bytes.Join([][]byte{{0, flags, 1, 1}, be32(w), be32(h)}, nil)
		}
		return bytes.Join([][]byte{{0, flags, 1, 1}, be16(w), be16(h)}, nil)
	}
	overlay := func(flags byte, w, h int) []byte {
		size := be16
		if flags&1 != 0 {
			size = be32
		}
		return bytes.Join([][]byte{{0, flags}, make([]byte, 8), size(w), size(h), size(0), size(0)}, nil)
	}
	tile := testItem{id: 2, typ: "hvc1", props: []int{2}}
	tests := []struct {
		name string
		item testItem
		w, h int
	}{
		{"Grid", testItem{id: 1, typ: "grid", props: []int{1}, data: [][]byte{grid(0, 30000, 20000)}, inIdat: true}, 30000, 20000},
		{"Grid32Bit", testItem{id: 1, typ: "grid", props: []int{1}, data: [][]byte{grid(1, 70000, 50000)}, inIdat: true}, 70000, 50000},
		{"GridInMdat", testItem{id: 1, typ: "grid", props: []int{1}, data: [][]byte{grid(0, 30000, 20000)}}, 30000, 20000},
		{"Overlay", testItem{id: 1, typ: "iovl", props: []int{1}, data: [][]byte{overlay(0, 12345, 6789)}, inIdat: true}, 12345, 6789},
		{"Overlay32Bit", testItem{id: 1, typ: "iovl", props: []int{1}, data: [][]byte{overlay(1, 123456, 789)}, inIdat: true}, 123456, 789},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := heifBytes(heifFile{brand: "heic", primary: 1, props: [][]byte{ispeProp(100, 100), ispeProp(50, 50)}, items: []testItem{tt.item, tile}})
			got := sniffSizes(t, file)
			if got.DecodedWidth != tt.w || got.DecodedHeight != tt.h {
				t.Errorf("Sniff.Decoded = %dx%d, want %dx%d", got.DecodedWidth, got.DecodedHeight, tt.w, tt.h)
			}
			if _, err := sniff.Inspect(bytes.NewReader(file), sniff.DefaultAcceptedTypes, 100_000); !errors.Is(err, sniff.ErrTooManyPixels) {
				t.Errorf("Inspect(canvas %dx%d under ispe 100x100, limit 100000) = %v, want ErrTooManyPixels", tt.w, tt.h, err)
			}
		})
	}
}

func TestHEIFLimits(t *testing.T) {
	padding := append([]byte{15<<3 | 2, 0xA0, 0x1F}, make([]byte, 4000)...) // a padding OBU of 4000 bytes
	data := bytes.Join([][]byte{temporalDelimiter, seqHeaderOBU(seqOpts{reduced: true, wBits: 8, hBits: 8, w: 64, h: 64}), padding}, nil)
	var items []testItem
	for id := range uint32(10) {
		items = append(items, testItem{id: id + 1, typ: "av01", props: []int{1, 2}, data: [][]byte{data}})
	}
	file := heifBytes(heifFile{brand: "avif", primary: 1, props: [][]byte{av1CProp(), ispeProp(64, 64)}, items: items})
	t.Run("DistinctItems", func(t *testing.T) {
		if _, err := sniff.Sniff(bytes.NewReader(file)); err != nil {
			t.Errorf("Sniff(10 items of 4 KB each) = %v, want nil", err)
		}
	})
	t.Run("OverlappingItems", func(t *testing.T) {
		// Every item's one extent becomes the whole mdat: reading each
		// would read the file ten times over.
		overlapping := bytes.Clone(file)
		iloc := boxAt(t, overlapping, "meta/iloc")
		mdat := len(file) - len(boxAt(t, file, "mdat"))
		for i := range 10 { // version 1, 4-byte offsets and lengths, no base: 16 bytes an item after 8
			entry := iloc[8+16*i:]
			binary.BigEndian.PutUint32(entry[8:], uint32(mdat))
			binary.BigEndian.PutUint32(entry[12:], uint32(10*len(data)))
		}
		if h, err := sniff.Sniff(bytes.NewReader(overlapping)); !errors.Is(err, sniff.ErrUnsupported) {
			t.Errorf("Sniff(10 items on the same data) = %+v, %v, want ErrUnsupported", h, err)
		}
	})
	t.Run("TooManyExtents", func(t *testing.T) {
		// libheif refuses an item in more than 32 extents.
		for _, n := range []int{32, 33} {
			extents := make([][]byte, n)
			for i := range extents {
				extents[i] = data[i*10 : i*10+10]
			}
			file := heifBytes(heifFile{brand: "avif", primary: 1, props: [][]byte{av1CProp(), ispeProp(64, 64)}, items: []testItem{{id: 1, typ: "av01", props: []int{1, 2}, data: extents}}})
			_, err := sniff.Sniff(bytes.NewReader(file))
			if n == 32 && err != nil || n == 33 && !errors.Is(err, sniff.ErrUnsupported) {
				t.Errorf("Sniff(an item in %d extents) = %v", n, err)
			}
		}
	})
	t.Run("TooManyItems", func(t *testing.T) {
		var items []testItem
		for id := range uint32(20001) {
			items = append(items, testItem{id: id + 1, typ: "Exif"})
		}
		file := heifBytes(heifFile{brand: "heic", primary: 1, props: [][]byte{ispeProp(64, 64)}, items: items, iloc: ilocLayout{2, 4, 4, 0, 0}})
		if h, err := sniff.Sniff(bytes.NewReader(file)); !errors.Is(err, sniff.ErrUnsupported) {
			t.Errorf("Sniff(20001 items) = %+v, %v, want ErrUnsupported", h, err)
		}
	})
}

// TestHEIFNeverPanics sniffs every prefix of real and built files, and
// each of them with bytes flipped, as a reader at offsets and as a stream.
func TestHEIFNeverPanics(t *testing.T) {
	seq := seqHeaderOBU(seqOpts{timing: true, equalInterval: true, ticks: 5, decoderModel: true, delayBits: 10, initialDisplay: true, ops: []seqOp{{level: 9, decoderModel: true, displayDelay: true}}, wBits: 12, hBits: 12, w: 300, h: 200})
	files := map[string][]byte{
		"VipsAVIF":   vipsSave(t, testenv.PNG(t, 64, 48, 255), "avif"),
		"VipsHEIC":   vipsSave(t, testenv.PNG(t, 33, 21, 255), "heic"),
		"BuiltAVIF":  avifWith([][]byte{av1CProp(seq), ispeProp(300, 200), clapProp(299, 1, 199, 1), irotProp(90)}, bytes.Join([][]byte{temporalDelimiter, seq}, nil)),
		"BuiltHEIC":  heicWith([][]byte{hvcCProp(spsNAL(spsOpts{w: 300, h: 200, subLayers: 1, subProfile: []bool{true}, subLevel: []bool{true}})), ispeProp(300, 200)}, nalUnits(spsNAL(spsOpts{w: 300, h: 200}))),
		"BuiltIloc2": heifBytes(heifFile{brand: "avif", primary: 1, props: [][]byte{av1CProp(), ispeProp(64, 64)}, iloc: ilocLayout{2, 8, 8, 8, 8}, items: []testItem{{id: 1, typ: "av01", props: []int{1, 2}, data: [][]byte{seq[:3], seq[3:]}}}}),
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			for n := range len(file) + 1 {
				sniff.Sniff(bytes.NewReader(file[:n]))
				sniff.Sniff(struct{ io.Reader }{bytes.NewReader(file[:n])})
			}
			for i := range file {
				for _, v := range []byte{0x00, 0xFF, file[i] ^ 0x80} {
					flipped := bytes.Clone(file)
					flipped[i] = v
					sniff.Sniff(bytes.NewReader(flipped))
				}
			}
		})
	}
}

func ExampleInspect_heif() {
	// A HEIC whose ispe claims 100x100 over an SPS that codes 10000x10000.
	sps := spsNAL(spsOpts{w: 10000, h: 10000, chroma: 1})
	_, err := sniff.Inspect(bytes.NewReader(heicWith([][]byte{hvcCProp(sps), ispeProp(100, 100)})), sniff.DefaultAcceptedTypes, 40_000_000)
	fmt.Println(err)
	// Output: too_many_pixels: the image decodes to 10000x10000, over the limit of 40000000 pixels
}
