"""graft's image decoding, resizing and image_dataset_from_directory against PIL and Keras 3.

Run under real Keras 3.15.1 (torch backend, Debian's PIL):
    ../shared/tools/keras3/run tests/images/check_images.py --cases GRAFT_IMAGE_CASES --work DIR

Writes PNG, JPEG, BMP and GIF files of many layouts (PIL's encoders, plus small hand-written PNG,
BMP and GIF writers for the layouts PIL does not write), then checks, with the graft_image_cases
program (tests/images/image_cases.cpp):
  decode  every file in every color_mode equals keras.utils.load_img (PIL) exactly (JPEG: within
          +-1 per channel), except where graft documents a difference (16-bit gray PNGs: the high
          byte); bad files (truncated, text named .jpg, 30000 x 30000 headers, ...) are errors
          naming the file, as they are errors in PIL;
  resize  the float images image_dataset_from_directory's loader gives
          (image_dataset_utils._load_image_grain: PIL + keras.ops.image.resize) for bilinear,
          nearest and bicubic, with and without crop_to_aspect_ratio / pad_to_aspect_ratio;
  index   file order, labels, class names and the training/validation split equal Keras'
          dataset_utils.index_directory + get_training_or_validation_split (image_dataset_from_
          directory itself needs TensorFlow or grain, absent here), for seeds, splits, class_names,
          explicit labels, labels=None, symlinks, hidden folders, odd names; the argument errors
          Keras raises are errors in graft too.
Exit status 0 when every check passes; the failures are printed.
"""

import argparse
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np

try:
    from PIL import Image
except ImportError:
    print("check_images.py needs PIL, which Keras' load_img uses: Debian python3-pil (scripts/install-deps)")
    sys.exit(1)

import keras  # noqa: F401  (loads the torch backend)
from keras.src.utils import dataset_utils, image_dataset_utils, image_utils

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL", msg)


# ---------------------------------------------------------------- hand-written encoders
def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path, rows, width, height, color_type, bit_depth, plte=None, trns=None, interlace=False):
    """rows: a function (x, y) -> tuple of samples. Writes any PNG colour type / depth."""
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]

    def scanline(xs, y):
        bits = []
        for x in xs:
            for s in rows(x, y)[:ch]:
                bits.append(s)
        if bit_depth == 16:
            return b"\0" + b"".join(struct.pack(">H", v) for v in bits)
        if bit_depth == 8:
            return b"\0" + bytes(bits)
        out, acc, n = bytearray(), 0, 0
        for v in bits:
            acc = (acc << bit_depth) | v
            n += bit_depth
            if n == 8:
                out.append(acc)
                acc, n = 0, 0
        if n:
            out.append(acc << (8 - n))
        return b"\0" + bytes(out)

    raw = b""
    if not interlace:
        for y in range(height):
            raw += scanline(range(width), y)
    else:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            xs = list(range(x0, width, dx))
            if not xs:
                continue
            for y in range(y0, height, dy):
                raw += scanline(xs, y)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if plte is not None:
        data += png_chunk(b"PLTE", bytes(sum(plte, ())))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(data)


def write_bmp(path, width, height, bits, pixel_bytes_row, palette=None, header=40, compression=0, masks=None,
              top_down=False, raw_data=None, palette_entry=4):
    """pixel_bytes_row(y) -> bytes of file row y (unpadded). Writes the headers PIL reads."""
    stride = ((width * bits + 31) // 32) * 4
    if raw_data is None:
        rows = b""
        for r in range(height):
            b = pixel_bytes_row(r)
            rows += b + b"\0" * (stride - len(b))
    else:
        rows = raw_data
    pal = b""
    if palette is not None:
        for c in palette:
            pal += bytes((c[2], c[1], c[0])) + (b"\0" if palette_entry == 4 else b"")
    extra = b""
    if header == 12:
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        h = (-height) & 0xFFFFFFFF if top_down else height
        info = struct.pack("<IiIHHIIiiII", header, width, h, 1, bits, compression, len(rows), 2835, 2835,
                           len(palette) if palette else 0, 0)
        if header >= 56 and masks is not None:
            info += struct.pack("<IIII", *masks)
        elif masks is not None:
            extra = struct.pack("<III", *masks[:3])
        info += b"\0" * (header - len(info))
    offset = 14 + len(info) + len(extra) + len(pal)
    data = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(extra) + len(pal) + len(rows), 0, 0, offset) + info + extra + pal + rows
    open(path, "wb").write(data)


def gif_lzw_literal(indices, min_code_size):
    """LZW data that only uses literal codes (a CLEAR before the code width would grow)."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    width = min_code_size + 1
    codes, since_clear = [clear], 0
    for v in indices:
        if since_clear == (1 << width) - (1 << min_code_size) - 3:
            codes.append(clear)
            since_clear = 0
        codes.append(v)
        since_clear += 1
    codes.append(end)
    out, acc, n = bytearray(), 0, 0
    for c in codes:
        acc |= c << n
        n += width
        while n >= 8:
            out.append(acc & 255)
            acc >>= 8
            n -= 8
    if n:
        out.append(acc & 255)
    blocks = b""
    for i in range(0, len(out), 255):
        blocks += bytes((len(out[i:i + 255]),)) + bytes(out[i:i + 255])
    return bytes((min_code_size,)) + blocks + b"\0"


def write_gif(path, screen, frame, indices, global_pal=None, local_pal=None, transparent=None, interlace=False, background=0):
    """screen = (w, h); frame = (x, y, w, h); indices: rows of the frame, top to bottom."""
    def pal_bytes(p):
        bits = max(1, (len(p) - 1).bit_length())
        p = list(p) + [(0, 0, 0)] * ((1 << bits) - len(p))
        return bits, b"".join(bytes(c) for c in p)

    data = b"GIF89a" + struct.pack("<HH", *screen)
    if global_pal is not None:
        bits, pb = pal_bytes(global_pal)
        data += bytes((0x80 | 0x70 | (bits - 1), background, 0)) + pb
    else:
        data += bytes((0, background, 0))
    if transparent is not None:
        data += b"\x21\xf9\x04" + bytes((1,)) + b"\0\0" + bytes((transparent,)) + b"\0"
    flags, lp = 0, b""
    if local_pal is not None:
        bits, lp = pal_bytes(local_pal)
        flags |= 0x80 | (bits - 1)
    if interlace:
        flags |= 0x40
    data += b"," + struct.pack("<HHHH", *frame) + bytes((flags,)) + lp
    rows = list(range(frame[3]))
    if interlace:
        rows = list(range(0, frame[3], 8)) + list(range(4, frame[3], 8)) + list(range(2, frame[3], 4)) + list(range(1, frame[3], 2))
    flat = [v for r in rows for v in indices[r]]
    data += gif_lzw_literal(flat, 8) + b";"
    open(path, "wb").write(data)


# ---------------------------------------------------------------- the files
def make_files(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(7)
    files = {}  # name -> kind ("png", "jpeg", "bmp", "gif", "png16gray", "bad")
    rgb = rng.randint(0, 256, size=(23, 37, 3)).astype(np.uint8)
    rgba = rng.randint(0, 256, size=(23, 37, 4)).astype(np.uint8)
    gray = rng.randint(0, 256, size=(23, 37)).astype(np.uint8)

    def save(name, im, kind, **kw):
        im.save(os.path.join(d, name), **kw)
        files[name] = kind

    # PNG from PIL
    save("rgb.png", Image.fromarray(rgb), "png")
    save("rgba.png", Image.fromarray(rgba), "png")
    save("gray.png", Image.fromarray(gray), "png")
    save("la.png", Image.fromarray(rgba[..., :2].copy(), "LA"), "png")
    save("bilevel.png", Image.fromarray(gray > 128), "png")
    pal = Image.fromarray(rgb).quantize(40)
    save("palette.png", pal, "png")
    save("palette_trns.png", pal, "png", transparency=3)
    save("rgb_trns.png", Image.fromarray(rgb), "png", transparency=(rgb[0, 0, 0], rgb[0, 0, 1], rgb[0, 0, 2]))
    # PNG from the hand-written writer: depths, interlace, tRNS
    px = lambda x, y: (((x * 7 + y * 3) % 256), ((x * 13 + y * 5) % 256), ((x * 3 + y * 11) % 256), ((x + y * 17) % 256))
    write_png(os.path.join(d, "gray2.png"), lambda x, y: ((x + y) % 4,), 11, 9, 0, 2); files["gray2.png"] = "png"
    write_png(os.path.join(d, "gray4.png"), lambda x, y: ((x * 3 + y) % 16,), 11, 9, 0, 4); files["gray4.png"] = "png"
    write_png(os.path.join(d, "gray4_trns.png"), lambda x, y: ((x * 3 + y) % 16,), 11, 9, 0, 4, trns=b"\0\5"); files["gray4_trns.png"] = "png_lowbit_trns"
    write_png(os.path.join(d, "rgb_interlaced.png"), px, 19, 21, 2, 8, interlace=True); files["rgb_interlaced.png"] = "png"
    write_png(os.path.join(d, "rgba_interlaced.png"), px, 19, 21, 6, 8, interlace=True); files["rgba_interlaced.png"] = "png"
    write_png(os.path.join(d, "rgb16.png"), lambda x, y: (x * 3000 % 65536, y * 2500 % 65536, (x * y * 97) % 65536), 13, 7, 2, 16); files["rgb16.png"] = "png"
    write_png(os.path.join(d, "rgba16.png"), lambda x, y: (x * 3000 % 65536, y * 2500 % 65536, (x * y * 97) % 65536, (x + y) * 4000 % 65536), 13, 7, 6, 16); files["rgba16.png"] = "png"
    write_png(os.path.join(d, "la16.png"), lambda x, y: (x * 3000 % 65536, y * 2500 % 65536), 13, 7, 4, 16); files["la16.png"] = "png"
    write_png(os.path.join(d, "gray16.png"), lambda x, y: ((x * 4099 + y * 333) % 65536,), 13, 7, 0, 16); files["gray16.png"] = "png16gray"
    p4 = [(rng.randint(256), rng.randint(256), rng.randint(256)) for _ in range(11)]
    write_png(os.path.join(d, "pal4_interlaced.png"), lambda x, y: ((x + 2 * y) % 11,), 17, 13, 3, 4, plte=p4, trns=b"\x80\0\xff", interlace=True); files["pal4_interlaced.png"] = "png"
    write_png(os.path.join(d, "pal1.png"), lambda x, y: ((x + y) % 2,), 9, 5, 3, 1, plte=[(200, 10, 30), (5, 250, 90)]); files["pal1.png"] = "png"
    # JPEG from PIL
    photo = np.zeros((75, 101, 3), np.uint8)
    yy, xx = np.mgrid[0:75, 0:101]
    photo[..., 0] = (xx * 2.5).astype(np.uint8)
    photo[..., 1] = (yy * 3.3).astype(np.uint8)
    photo[..., 2] = ((xx + yy) * 1.2 + rng.randint(0, 40, size=(75, 101))).astype(np.uint8)
    save("q90_420.jpg", Image.fromarray(photo), "jpeg", quality=90)
    save("q75_444.jpeg", Image.fromarray(photo), "jpeg", quality=75, subsampling=0)
    save("q95_422.jpg", Image.fromarray(photo), "jpeg", quality=95, subsampling=1)
    save("progressive.jpg", Image.fromarray(photo), "jpeg", quality=85, progressive=True)
    save("gray.jpg", Image.fromarray(photo[..., 1]), "jpeg", quality=90)
    save("odd_37x53.jpg", Image.fromarray(rgb).resize((53, 37)), "jpeg", quality=80)
    save("cmyk.jpg", Image.fromarray(photo).convert("CMYK"), "jpeg", quality=90)
    save("JPEG_UPPER.JPG", Image.fromarray(photo), "jpeg")
    # BMP from PIL
    save("rgb.bmp", Image.fromarray(rgb), "bmp")
    save("rgba.bmp", Image.fromarray(rgba), "bmp")
    save("gray.bmp", Image.fromarray(gray), "bmp")
    save("palette.bmp", pal, "bmp")
    save("bilevel.bmp", Image.fromarray(gray > 100), "bmp")
    # BMP from the hand-written writer
    W, H = 13, 6
    vals = [[(x * 5 + y * 7) % 32 for x in range(W)] for y in range(H)]
    write_bmp(os.path.join(d, "bgr555.bmp"), W, H, 16, lambda r: b"".join(struct.pack("<H", (vals[r][x] << 10) | (vals[r][(x + 1) % W] << 5) | vals[r][(x + 2) % W]) for x in range(W))); files["bgr555.bmp"] = "bmp"
    write_bmp(os.path.join(d, "bgr565.bmp"), W, H, 16, lambda r: b"".join(struct.pack("<H", (vals[r][x] << 11) | ((vals[r][(x + 1) % W] * 2 + 1) << 5) | vals[r][(x + 2) % W]) for x in range(W)), compression=3, masks=(0xF800, 0x7E0, 0x1F, 0)); files["bgr565.bmp"] = "bmp"
    write_bmp(os.path.join(d, "topdown24.bmp"), W, H, 24, lambda r: bytes(rgb[r, :W, ::-1].tobytes()), top_down=True); files["topdown24.bmp"] = "bmp"
    write_bmp(os.path.join(d, "os2_8bit.bmp"), W, H, 8, lambda r: bytes([(x * 3 + r) % 7 for x in range(W)]), palette=[tuple(int(v) for v in rgb[0, i]) for i in range(7)], header=12, palette_entry=3); files["os2_8bit.bmp"] = "bmp"
    write_bmp(os.path.join(d, "pal4.bmp"), W, H, 4, lambda r: bytes([((x * 2 + r) % 9) << 4 | ((x * 2 + 1 + r) % 9) for x in range((W + 1) // 2)]), palette=[tuple(int(v) for v in rgb[1, i]) for i in range(9)]); files["pal4.bmp"] = "bmp"
    write_bmp(os.path.join(d, "v5_bgra.bmp"), W, H, 32, lambda r: bytes(rgba[r, :W][:, [2, 1, 0, 3]].tobytes()), header=124, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)); files["v5_bgra.bmp"] = "bmp"
    write_bmp(os.path.join(d, "v5_rgba.bmp"), W, H, 32, lambda r: bytes(rgba[r, :W].tobytes()), header=124, compression=3, masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)); files["v5_rgba.bmp"] = "bmp"
    write_bmp(os.path.join(d, "short_palette.bmp"), W, H, 8, lambda r: bytes([(x * 37 + r * 11) % 256 for x in range(W)]), palette=[(10, 20, 30), (40, 50, 60), (200, 100, 0)]); files["short_palette.bmp"] = "bmp"
    rle8 = b""
    for r in range(H):  # runs, an absolute run, end of line; end of bitmap
        rle8 += bytes((4, r % 3, 3, 1)) + bytes((0, 4, 2, 0, 1, 2)) + bytes((2, 1))
        rle8 += bytes((0, 0))
    rle8 += bytes((0, 1))
    write_bmp(os.path.join(d, "rle8.bmp"), W, H, 8, None, palette=[tuple(int(v) for v in rgb[2, i]) for i in range(4)], compression=1, raw_data=rle8); files["rle8.bmp"] = "bmp"
    rle4 = b""
    for r in range(H):
        rle4 += bytes((5, 0x12, 0, 4, 0x30, 0x21, 4, 0x03)) + bytes((0, 0))
    rle4 += bytes((0, 1))
    write_bmp(os.path.join(d, "rle4.bmp"), W, H, 4, None, palette=[tuple(int(v) for v in rgb[3, i]) for i in range(4)], compression=2, raw_data=rle4); files["rle4.bmp"] = "bmp"
    # GIF from PIL (interlaced when 16 rows or more) and hand-written ones
    save("pil.gif", pal, "gif")
    save("pil_trns.gif", pal, "gif", transparency=5)
    save("pil_gray.gif", Image.fromarray(gray), "gif")
    idx = [[(x * 3 + y * 5) % 6 for x in range(9)] for y in range(7)]
    gp = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30), (200, 200, 0), (0, 128, 255)]
    write_gif(os.path.join(d, "framed.gif"), (15, 12), (3, 2, 9, 7), idx, global_pal=gp); files["framed.gif"] = "gif"
    write_gif(os.path.join(d, "framed_trns.gif"), (15, 12), (3, 2, 9, 7), idx, global_pal=gp, transparent=4); files["framed_trns.gif"] = "gif"
    write_gif(os.path.join(d, "beyond_screen.gif"), (6, 5), (2, 1, 9, 7), idx, global_pal=gp); files["beyond_screen.gif"] = "gif"
    write_gif(os.path.join(d, "local_pal.gif"), (9, 7), (0, 0, 9, 7), idx, global_pal=[(1, 1, 1)] * 2, local_pal=gp[::-1]); files["local_pal.gif"] = "gif"
    write_gif(os.path.join(d, "no_pal.gif"), (9, 7), (0, 0, 9, 7), [[v * 40 for v in r] for r in idx]); files["no_pal.gif"] = "gif"
    write_gif(os.path.join(d, "short_pal.gif"), (9, 7), (0, 0, 9, 7), [[v * 3 for v in r] for r in idx], global_pal=gp[:4]); files["short_pal.gif"] = "gif"
    idx20 = [[(x + y * 2) % 6 for x in range(5)] for y in range(20)]
    write_gif(os.path.join(d, "interlaced.gif"), (5, 20), (0, 0, 5, 20), idx20, global_pal=gp, interlace=True); files["interlaced.gif"] = "gif"

    # bad files: each must be an error naming the file (PIL fails on each too)
    def put(name, data):
        open(os.path.join(d, name), "wb").write(data)
        files[name] = "bad"
    good_png = open(os.path.join(d, "rgb.png"), "rb").read()
    good_jpg = open(os.path.join(d, "q90_420.jpg"), "rb").read()
    good_gif = open(os.path.join(d, "framed.gif"), "rb").read()
    good_bmp = open(os.path.join(d, "rgb.bmp"), "rb").read()
    put("text.jpg", b"this is not an image, just text saved as .jpg\n")
    put("empty.png", b"")
    put("truncated.png", good_png[: len(good_png) // 2])
    put("truncated.jpg", good_jpg[: len(good_jpg) // 2])
    put("truncated.gif", good_gif[: len(good_gif) - 20])
    put("truncated.bmp", good_bmp[: len(good_bmp) - 100])
    put("header_only.jpg", good_jpg[:200])
    huge = bytearray(good_png)
    huge[16:24] = struct.pack(">II", 30000, 30000)
    huge[29:33] = struct.pack(">I", zlib.crc32(bytes(huge[12:29])) & 0xFFFFFFFF)
    put("huge.png", bytes(huge))
    hj = bytearray(good_jpg)
    k = hj.find(b"\xff\xc0")
    hj[k + 5:k + 9] = struct.pack(">HH", 30000, 30000)
    put("huge.jpg", bytes(hj))
    hg = bytearray(good_gif)
    hg[6:10] = struct.pack("<HH", 30000, 30000)
    put("huge.gif", bytes(hg))
    hb = bytearray(good_bmp)
    hb[18:26] = struct.pack("<ii", 30000, 30000)
    put("huge.bmp", bytes(hb))
    bad_crc = bytearray(good_png)
    bad_crc[40] ^= 0xFF  # inside IDAT's compressed data
    put("corrupt_idat.png", bytes(bad_crc))
    # a PNG saved under a .jpg name is a PNG: decoded, not refused
    shutil.copy(os.path.join(d, "rgb.png"), os.path.join(d, "png_named.jpg"))
    files["png_named.jpg"] = "png"
    return files


def read_bin(path, dtype):
    raw = open(path, "rb").read()
    h, w, c = struct.unpack("<iii", raw[:12])
    return np.frombuffer(raw[12:], dtype=dtype).reshape(h, w, c)


def check_decode(cases, d, files, out):
    modes = ["grayscale", "rgb", "rgba"]
    for m in modes:
        subprocess.run([cases, "decode", out, m] + [os.path.join(d, f) for f in sorted(files)], check=True)
    n_ok = 0
    for name, kind in sorted(files.items()):
        for m in modes:
            base = os.path.join(out, f"{name}.{m}")
            if kind == "bad":
                if os.path.exists(base + ".bin"):
                    fail(f"decode {name} {m}: graft decoded a bad file")
                    continue
                msg = open(base + ".err").read()
                if name not in msg:
                    fail(f"decode {name} {m}: the error does not name the file: {msg}")
                try:
                    im = image_utils.load_img(os.path.join(d, name), color_mode=m)
                    np.array(im)
                    if name not in ("corrupt_idat.png",):
                        fail(f"decode {name} {m}: PIL reads it but graft refuses: {msg}")
                except Exception:
                    pass
                if name.startswith("huge") and "max_image_pixels" not in msg:
                    fail(f"decode {name}: the error does not name the pixel limit: {msg}")
                n_ok += 1
                continue
            if not os.path.exists(base + ".bin"):
                fail(f"decode {name} {m}: graft failed: {open(base + '.err').read()}")
                continue
            got = read_bin(base + ".bin", np.uint8)
            if kind == "png16gray":
                src = np.array(Image.open(os.path.join(d, name))).astype(np.int64)
                want = (src >> 8).astype(np.uint8)[..., None]
                if m != "grayscale":
                    want = np.concatenate([want] * 3 + ([np.full_like(want, 255)] if m == "rgba" else []), axis=-1)
            else:
                want = np.array(image_utils.load_img(os.path.join(d, name), color_mode=m))
                if want.ndim == 2:
                    want = want[..., None]
                if kind == "png_lowbit_trns" and m == "rgba":
                    # PIL compares a 4-bit gray tRNS key (5) with the pixels scaled to 8 bits, so
                    # nothing is transparent; libpng (and TensorFlow) follow the PNG spec: 5 * 17.
                    want = want.copy()
                    want[..., 3] = np.where(want[..., 0] == 5 * 17, 0, 255)
            if got.shape != want.shape:
                fail(f"decode {name} {m}: shape {got.shape}, PIL {want.shape}")
                continue
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).max() if got.size else 0
            tol = 1 if kind == "jpeg" else 0
            if diff > tol:
                fail(f"decode {name} {m}: max difference {diff} from PIL (allowed {tol})")
            else:
                n_ok += 1
    print(f"decode: {n_ok} file x color_mode cases agree with PIL / fail as PIL fails")


def check_resize(cases, d, out):
    srcs = ["rgb.png", "q90_420.jpg", "gray.png", "rgba.png", "odd_37x53.jpg", "gray4.png", "palette.bmp", "framed.gif"]
    # a few shapes: one pixel, thin, square
    Image.fromarray(np.array([[[12, 200, 7]]], np.uint8)).save(os.path.join(d, "one_px.png"))
    Image.fromarray((np.arange(2 * 50 * 3).reshape(2, 50, 3) % 256).astype(np.uint8)).save(os.path.join(d, "thin.png"))
    Image.fromarray((np.arange(64 * 64 * 3).reshape(64, 64, 3) * 7 % 256).astype(np.uint8)).save(os.path.join(d, "square64.png"))
    srcs += ["one_px.png", "thin.png", "square64.png"]
    n = 0
    worst = {}
    for (h, w) in [(224, 224), (16, 8), (31, 47), (1, 1), (64, 64), (100, 3)]:
        for interp in ["bilinear", "nearest", "bicubic"]:
            for crop, pad in [(0, 0), (1, 0), (0, 1)]:
                for mode in (["rgb", "grayscale"] if (h, w) == (31, 47) else ["rgb"]):
                    tag = f"{mode}.{h}x{w}.{interp}.{crop}{pad}"
                    subprocess.run([cases, "resize", out, mode, str(h), str(w), interp, str(crop), str(pad)] + [os.path.join(d, s) for s in srcs], check=True)
                    for s in srcs:
                        base = os.path.join(out, f"{s}.{tag}")
                        if not os.path.exists(base + ".bin"):
                            fail(f"resize {s} {tag}: graft failed: {open(base + '.err').read()}")
                            continue
                        got = read_bin(base + ".bin", np.float32)
                        nch = {"rgb": 3, "grayscale": 1, "rgba": 4}[mode]
                        want = image_dataset_utils._load_image_grain(os.path.join(d, s), (h, w), nch, interp, "channels_last",
                                                                     crop_to_aspect_ratio=bool(crop), pad_to_aspect_ratio=bool(pad))
                        want = np.asarray(want.cpu().numpy() if hasattr(want, "cpu") else want)
                        if got.shape != want.shape:
                            fail(f"resize {s} {tag}: shape {got.shape}, Keras {want.shape}")
                            continue
                        diff = float(np.abs(got - want).max())
                        worst[interp] = max(worst.get(interp, 0.0), diff)
                        if diff > 1e-3:
                            fail(f"resize {s} {tag}: max difference {diff} from Keras")
                        else:
                            n += 1
    print(f"resize: {n} cases agree with Keras' loader (largest differences: " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) + ")")


# ---------------------------------------------------------------- folders
def make_tree(root):
    if os.path.exists(root):
        shutil.rmtree(root)
    png = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(png, "PNG")
    data = png.getvalue()
    layout = {
        "cats": ["b.png", "a.PNG", "c.jpg", "notes.txt", "sub/x.png", "sub/deeper/y.jpeg", "sub b/z.png", "sub.b/w.png", ".hidden.png"],
        "dogs": ["01.bmp", "1.gif", "10.png", "2.png", "Z.png", "ä.png", "e\u0301.png", ".hid/q.png"],
        "Birds": ["k.jpg", "l.jpg", "m.JPEG"],
        "empty": [],
        ".git": ["ignored.png"],
        "zebra fish": ["f%d.png" % i for i in range(23)],
    }
    for cls, names in layout.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for n in names:
            p = os.path.join(root, cls, n)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "wb").write(data)
    open(os.path.join(root, "top_level.png"), "wb").write(data)  # ignored with inferred labels
    os.makedirs(os.path.join(root, "elsewhere"), exist_ok=True)
    for i in range(3):
        open(os.path.join(root, "elsewhere", f"e{i}.png"), "wb").write(data)
    os.symlink(os.path.join(root, "elsewhere"), os.path.join(root, "dogs", "linked"))
    os.symlink(os.path.join(root, "cats"), os.path.join(root, "zz_link_class"))
    os.symlink(os.path.join(root, "cats", "b.png"), os.path.join(root, "Birds", "b_link.png"))


def run_graft_index(cases, root, opts):
    r = subprocess.run([cases, "index", root] + [f"{k}={v}" for k, v in opts.items()], capture_output=True, text=True)
    if r.returncode == 3:
        return "error", r.stdout.strip()
    if r.returncode != 0:
        raise RuntimeError(f"graft_image_cases index failed: {r.stdout} {r.stderr}")
    out, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("== "):
            cur = line[3:]
            out[cur] = {"paths": [], "labels": [], "classes": []}
        elif line.startswith("classes"):
            out[cur]["classes"] = line.split("\t")[1:]
        elif line.startswith("skipped"):
            pass
        else:
            p, lab = line.rsplit("\t", 1)
            out[cur]["paths"].append(p)
            out[cur]["labels"].append(int(lab))
    return "ok", out


def keras_index(root, opts):
    labels = opts.get("labels", "inferred")
    if labels == "none" or opts.get("label_mode") == "none":
        labels = None
    elif "label_list" in opts:
        labels = [int(v) for v in opts["label_list"].split(",")]
    class_names = opts["class_names"].split(",") if "class_names" in opts else None
    shuffle = opts.get("shuffle", "1") == "1"
    seed = int(opts["seed"]) if "seed" in opts else None
    paths, labs, classes = dataset_utils.index_directory(root, labels, formats=image_dataset_utils.ALLOWLIST_FORMATS, class_names=class_names,
                                                         shuffle=shuffle, seed=seed, follow_links=opts.get("follow_links") == "1", verbose=False)
    vs = float(opts.get("validation_split", 0)) or None
    subset = opts.get("subset")
    res = {}
    for name, sub in ([("training", "training"), ("validation", "validation")] if subset == "both" else [("dataset", subset)]):
        p, l = dataset_utils.get_training_or_validation_split(paths, labs, vs, sub)
        res[name] = {"paths": list(p), "labels": [int(v) for v in l] if l is not None else [-1] * len(p), "classes": list(classes or [])}
    return res


def check_index(cases, work):
    root = os.path.join(work, "tree")
    make_tree(root)
    cases_ok = 0
    configs = [
        {"shuffle": "0"},
        {"seed": "0"}, {"seed": "1"}, {"seed": "1337"}, {"seed": "4294967295"},
        {"seed": "42", "validation_split": "0.2", "subset": "training"},
        {"seed": "42", "validation_split": "0.2", "subset": "validation"},
        {"seed": "7", "validation_split": "0.33", "subset": "both"},
        {"shuffle": "0", "validation_split": "0.25", "subset": "both"},
        {"seed": "3", "class_names": "zebra fish,cats"},
        {"seed": "5", "labels": "none"},
        {"seed": "5", "label_mode": "none", "validation_split": "0.5", "subset": "training"},
        {"seed": "11", "follow_links": "1"},
        {"seed": "11", "follow_links": "1", "validation_split": "0.1", "subset": "both"},
    ]
    for opts in configs:
        try:
            want = keras_index(root, opts)
        except Exception as e:  # noqa: BLE001
            fail(f"index {opts}: Keras failed: {e!r}")
            continue
        st, got = run_graft_index(cases, root, opts)
        if st != "ok":
            fail(f"index {opts}: graft failed: {got}")
            continue
        for k in want:
            for field in ("paths", "labels", "classes"):
                if want[k][field] != got.get(k, {}).get(field):
                    fail(f"index {opts} {k} {field}: graft {got.get(k, {}).get(field)} != Keras {want[k][field]}")
                    break
            else:
                cases_ok += 1
    # explicit labels: as many as the files of the whole tree (labels=list walks everything)
    flat = keras_index(root, {"labels": "none", "shuffle": "0"})["dataset"]["paths"]
    lab = ",".join(str(i % 3) for i in range(len(flat)))
    for opts in [{"label_list": lab, "seed": "9"}, {"label_list": lab, "seed": "9", "validation_split": "0.3", "subset": "validation"}]:
        want = keras_index(root, opts)
        st, got = run_graft_index(cases, root, opts)
        if st != "ok" or want["dataset"] != got["dataset"]:
            fail(f"index explicit labels {opts}: graft {got} != Keras {want}")
        else:
            cases_ok += 1
    print(f"index: {cases_ok} folder cases give Keras' files, labels, classes and split")

    # argument errors: Keras raises (ValueError / FileNotFoundError) exactly where graft does
    empty = os.path.join(work, "empty_dir")
    os.makedirs(empty, exist_ok=True)
    flat_dir = os.path.join(work, "flat_dir")
    os.makedirs(flat_dir, exist_ok=True)
    shutil.copy(os.path.join(root, "top_level.png"), os.path.join(flat_dir, "a.png"))
    err_cases = [
        (root, {"validation_split": "0.2", "subset": "training"}, dict(validation_split=0.2, subset="training")),  # no seed
        (root, {"validation_split": "1.5", "subset": "training", "seed": "1"}, dict(validation_split=1.5, subset="training", seed=1)),
        (root, {"subset": "training", "seed": "1"}, dict(subset="training", seed=1)),
        (root, {"validation_split": "0.2", "seed": "1"}, dict(validation_split=0.2, seed=1)),
        (root, {"validation_split": "0.2", "subset": "test", "seed": "1"}, dict(validation_split=0.2, subset="test", seed=1)),
        (root, {"label_mode": "binary", "seed": "1"}, dict(label_mode="binary", seed=1)),
        (root, {"label_mode": "sparse", "seed": "1"}, dict(label_mode="sparse", seed=1)),
        (root, {"color_mode": "cmyk", "seed": "1"}, dict(color_mode="cmyk", seed=1)),
        (root, {"class_names": "cats,lions", "seed": "1"}, dict(class_names=["cats", "lions"], seed=1)),
        (root, {"labels": "none", "class_names": "cats", "seed": "1"}, dict(labels=None, class_names=["cats"], seed=1)),
        (root, {"label_list": "0,1", "seed": "1"}, dict(labels=[0, 1], seed=1)),
        (os.path.join(work, "missing_dir"), {"seed": "1"}, dict(seed=1)),
        (empty, {"seed": "1"}, dict(seed=1)),
        (flat_dir, {"seed": "1"}, dict(seed=1)),
    ]
    n_err = 0
    for d, gopts, kopts in err_cases:
        st, got = run_graft_index(cases, d, gopts)
        try:
            keras.utils.image_dataset_from_directory(d, verbose=False, **kopts)
            keras_err = None
        except (ValueError, FileNotFoundError) as e:
            keras_err = e
        except ImportError:  # the arguments passed Keras' checks; the tf.data pipeline needs TensorFlow
            keras_err = None
        if (st == "error") != (keras_err is not None):
            fail(f"errors {gopts} in {d}: graft {st} {got if st == 'error' else ''}, Keras {keras_err!r}")
        else:
            n_err += 1
    print(f"index errors: {n_err} of {len(err_cases)} argument / folder errors raised where Keras raises them")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    if os.path.exists(a.work):
        shutil.rmtree(a.work)
    d, out = os.path.join(a.work, "files"), os.path.join(a.work, "out")
    os.makedirs(out)
    files = make_files(d)
    check_decode(a.cases, d, files, out)
    check_resize(a.cases, d, out)
    check_index(a.cases, a.work)
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        return 1
    print("all image checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
