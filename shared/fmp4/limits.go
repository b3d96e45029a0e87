package fmp4

// MaxMoof is the largest moof box (header included) the pipeline carries:
// the relay refuses a fragment whose moof, as it would store it, is
// larger, and the manifest function reads a stored fragment's moof up to
// this size. A real moof is far smaller: a 6 s fragment of 4K video at 60
// frames per second is 360 trun entries, a few kilobytes (under 1 MiB even
// with per-sample encryption data), so 8 MiB leaves room for any encoder
// while keeping the function's read per event (a 256 MB Lambda) and the
// relay's box held in memory per push small.
const MaxMoof = 8 << 20

// MaxMoofIn is the largest moof the relay takes from an encoder: MaxMoof
// less room for what RewriteHead adds (tfdt, tfxd, tfrf and the trex
// defaults in tfhd: a few hundred bytes).
//
// Encryption adds more, per sample: its senc entry (an 8-byte IV in cenc,
// none in cbcs, 2 bytes and 6 per subsample) and a saiz byte, and in a
// fragment of a rotated key a seig sample group and the period's pssh
// boxes (a 2 s fragment of 60 fps video: 1.7 to 3.8 KB more,
// TestEncryptionGrowsTheMoofBySampleInfo). That is not bounded by this
// margin for a moof of many samples: a relay that encrypts checks the
// moof it stores against MaxMoof.
const MaxMoofIn = MaxMoof - 4<<10
