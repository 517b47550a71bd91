package sniff

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// The coded size of HEVC and AV1 pictures, read from their parameter sets
// bit by bit, for the HEIF and AVIF pixel limit.

// hvcCSizes calls found with the picture size of every SPS among the NAL
// units of an hvcC box (ISO/IEC 14496-15 HEVCDecoderConfigurationRecord).
func hvcCSizes(body []byte, found func(w, h int)) {
	c := cursor{b: body}
	c.skip(22) // the fixed fields, up to lengthSizeMinusOne
	arrays := int(c.u8())
	for range arrays {
		c.skip(1) // array_completeness, NAL_unit_type
		n := int(c.u16())
		for range n {
			nal := c.bytes(int(c.u16()))
			if c.bad {
				return
			}
			if len(nal) > 2 && nal[0]>>1&0x3F == 33 { // the NAL unit header says SPS
				if w, h, ok := hevcSPSSize(nal[2:]); ok {
					found(w, h)
				}
			}
		}
	}
}

// hevcSizes calls found with the picture size of every SPS among the NAL
// units of an item's data. libheif 1.15 gives the data to libde265 as NAL
// units each behind a 4-byte length, whatever the hvcC's
// lengthSizeMinusOne says, so this reads them so.
func hevcSizes(r *bufio.Reader, found func(w, h int)) error {
	head := make([]byte, 6) // length, NAL unit header
	for {
		if _, err := io.ReadFull(r, head[:4]); err != nil {
			return endOfData(err)
		}
		n := int64(binary.BigEndian.Uint32(head[:4]))
		if n < 2 {
			if _, err := r.Discard(int(n)); err != nil {
				return endOfData(err)
			}
			continue
		}
		if _, err := io.ReadFull(r, head[4:]); err != nil {
			return endOfData(err)
		}
		n -= 2
		if head[4]>>1&0x3F == 33 {
			sps, err := readUnit(r, n)
			if err != nil {
				return endOfData(err)
			}
			if w, h, ok := hevcSPSSize(sps); ok {
				found(w, h)
			}
			continue
		}
		if _, err := r.Discard(int(n)); err != nil {
			return endOfData(err)
		}
	}
}

// hevcSPSSize reads pic_width_in_luma_samples and
// pic_height_in_luma_samples from the payload of an SPS NAL unit (ITU-T
// H.265 7.3.2.2), less the conformance window: the picture decoded. (The
// decoder allocates the uncropped size, a multiple of the coding block,
// at most a few samples more each way; counting those against MAX_PIXELS
// refused a 7071x7071 HEIC, whose blocks make it 7072x7072.)
func hevcSPSSize(payload []byte) (int, int, bool) {
	b := bitReader{data: unescapeRBSP(payload)}
	b.skip(4) // sps_video_parameter_set_id
	subLayers := int(b.u(3))
	b.skip(1) // sps_temporal_id_nesting_flag
	// profile_tier_level(1, sps_max_sub_layers_minus1): the general
	// profile, tier, flags and level take 96 bits; then each sub-layer
	// says whether its own profile (88 bits) and level (8 bits) follow.
	b.skip(96)
	var profile, level [8]bool
	for i := range subLayers {
		profile[i], level[i] = b.u(1) == 1, b.u(1) == 1
	}
	if subLayers > 0 {
		b.skip(2 * (8 - subLayers)) // reserved_zero_2bits
	}
	for i := range subLayers {
		if profile[i] {
			b.skip(88)
		}
		if level[i] {
			b.skip(8)
		}
	}
	b.ue() // sps_seq_parameter_set_id
	chroma := b.ue()
	separate := chroma == 3 && b.u(1) == 1 // separate_colour_plane_flag
	w, h := b.ue(), b.ue()
	if b.u(1) == 1 { // conformance_window_flag: offsets in chroma samples (Table 6-1)
		subW, subH := uint64(1), uint64(1)
		if !separate && (chroma == 1 || chroma == 2) {
			subW = 2
		}
		if !separate && chroma == 1 {
			subH = 2
		}
		left, right, top, bottom := b.ue(), b.ue(), b.ue(), b.ue()
		if cw, ch := subW*(left+right), subH*(top+bottom); cw < w && ch < h {
			w, h = w-cw, h-ch
		}
	}
	return int(w), int(h), !b.bad && w > 0 && h > 0
}

// unescapeRBSP removes the emulation-prevention bytes of a NAL unit: the
// 0x03 of every 0x000003.
func unescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
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

// av1Sizes calls found with the maximum frame size of every sequence header
// OBU among the OBUs of r: the configOBUs of an av1C, or an item's data,
// which libheif gives to the decoder after them (AV1 5.3).
func av1Sizes(r *bufio.Reader, found func(w, h int)) error {
	for {
		header, err := r.ReadByte()
		if err != nil {
			return endOfData(err)
		}
		if header&0x04 != 0 { // obu_extension_flag
			if _, err := r.ReadByte(); err != nil {
				return endOfData(err)
			}
		}
		size := int64(-1) // without obu_has_size_field the OBU runs to the end
		if header&0x02 != 0 {
			if size, err = leb128(r); err != nil {
				return endOfData(err)
			}
			if size > math.MaxUint32 {
				return nil // dav1d and libaom refuse such a size; nothing after it decodes
			}
		}
		if header>>3&0x0F == 1 { // OBU_SEQUENCE_HEADER
			seq, err := readUnit(r, size)
			if err != nil {
				return endOfData(err)
			}
			if w, h, ok := av1SequenceSize(seq); ok {
				found(w, h)
			}
		} else if size >= 0 {
			_, err = r.Discard(int(size))
		}
		if size < 0 || err != nil {
			return endOfData(err)
		}
	}
}

// leb128 reads an unsigned LEB128 of at most 8 bytes (AV1 4.10.5).
func leb128(r *bufio.Reader) (int64, error) {
	var v uint64
	for i := range 8 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7F) << (7 * i)
		if b&0x80 == 0 {
			break
		}
	}
	return int64(v), nil // at most 56 bits
}

// av1SequenceSize reads max_frame_width_minus_1 and
// max_frame_height_minus_1 from a sequence header OBU's payload (AV1 5.5):
// no frame of the sequence is larger.
func av1SequenceSize(payload []byte) (int, int, bool) {
	b := bitReader{data: payload}
	b.skip(3 + 1)    // seq_profile, still_picture
	if b.u(1) == 1 { // reduced_still_picture_header
		b.skip(5) // seq_level_idx[0]
	} else {
		decoderModelInfo, delayBits := false, 0
		if b.u(1) == 1 { // timing_info_present_flag
			b.skip(32 + 32)  // num_units_in_display_tick, time_scale
			if b.u(1) == 1 { // equal_picture_interval
				b.uvlc() // num_ticks_per_picture_minus_1
			}
			if decoderModelInfo = b.u(1) == 1; decoderModelInfo {
				delayBits = int(b.u(5)) + 1 // buffer_delay_length_minus_1
				b.skip(32 + 5 + 5)          // num_units_in_decoding_tick, two lengths
			}
		}
		initialDisplayDelay := b.u(1) == 1
		points := int(b.u(5)) + 1 // operating_points_cnt_minus_1
		for range points {
			b.skip(12)      // operating_point_idc
			if b.u(5) > 7 { // seq_level_idx
				b.skip(1) // seq_tier
			}
			if decoderModelInfo && b.u(1) == 1 { // decoder_model_present_for_this_op
				b.skip(2*delayBits + 1) // decoder and encoder buffer delays, low_delay_mode_flag
			}
			if initialDisplayDelay && b.u(1) == 1 {
				b.skip(4) // initial_display_delay_minus_1
			}
		}
	}
	wBits, hBits := int(b.u(4))+1, int(b.u(4))+1
	w, h := int(b.u(wBits))+1, int(b.u(hBits))+1
	return w, h, !b.bad
}

// readUnit reads a parameter set or sequence header of n bytes (to the end
// of r when n < 0), keeping at most maxParamSetBytes of it: the sizes come
// early, and the rest is discarded unread.
func readUnit(r *bufio.Reader, n int64) ([]byte, error) {
	keep := int64(maxParamSetBytes)
	if n >= 0 {
		keep = min(n, keep)
	}
	buf := make([]byte, keep)
	got, err := io.ReadFull(r, buf)
	if err != nil && (n >= 0 || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF)) {
		return nil, err
	}
	if n > keep {
		if _, err := r.Discard(int(n - keep)); err != nil {
			return buf, err
		}
	}
	return buf[:got], nil
}

// bitReader reads a bitstream most significant bit first; reading past the
// end marks it bad and yields zeros.
type bitReader struct {
	data []byte
	pos  int // in bits
	bad  bool
}

// u reads an n-bit unsigned number, n at most 64.
func (b *bitReader) u(n int) uint64 {
	var v uint64
	for range n {
		if b.pos>>3 >= len(b.data) {
			b.bad = true
			return 0
		}
		v = v<<1 | uint64(b.data[b.pos>>3]>>(7-b.pos&7)&1)
		b.pos++
	}
	return v
}

func (b *bitReader) skip(n int) {
	if b.pos += n; b.pos > 8*len(b.data) {
		b.bad = true
	}
}

// ue reads an Exp-Golomb number (H.265 9.2); more than 31 leading zeros
// would not fit the 32 bits every such field has.
func (b *bitReader) ue() uint64 {
	zeros := 0
	for b.u(1) == 0 {
		if zeros++; b.bad || zeros > 31 {
			b.bad = true
			return 0
		}
	}
	return 1<<zeros - 1 + b.u(zeros)
}

// uvlc reads an AV1 variable-length number (4.10.3). The spec reads zeros
// up to a one; dav1d and libaom, the decoders behind libheif, stop after
// 32 zeros, take 2^32-1 and refuse the header, so this stops there too.
func (b *bitReader) uvlc() uint64 {
	zeros := 0
	for b.u(1) == 0 {
		if b.bad {
			return 0
		}
		if zeros++; zeros == 32 {
			return 1<<32 - 1
		}
	}
	return 1<<zeros - 1 + b.u(zeros)
}
