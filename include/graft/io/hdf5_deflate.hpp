// graft — compressed (gzip) HDF5 datasets checked before libhdf5 inflates them.
//
// libhdf5's deflate filter grows its output buffer for as long as the compressed stream goes on:
// a chunk of a few kilobytes that inflates to gigabytes (a decompression bomb) makes it allocate
// all of it, and libhdf5 then silently keeps the first chunk's worth. Its built-in filters cannot
// be replaced (H5Zregister refuses ids below 256), so graft reads each compressed chunk's raw
// bytes first (H5Dread_chunk, at most the chunk's stored size, which the validator bounded by the
// file's size) and inflates them through a fixed 64 KiB window, counting: a chunk that inflates
// to more bytes than a chunk holds is refused before libhdf5 touches it. Pipelines other than
// shuffle, deflate and fletcher32 around a deflate filter are refused too (no Keras writer makes
// them). The cost is a second inflation of compressed datasets, which Keras does not write.
#pragma once

#include <H5Cpp.h>
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"

namespace graft {
namespace h5 {
namespace deflate {

/// How many bytes the deflate stream `data` inflates to, counting at most `limit` + 1 (more
/// means "too many"). -1: not a valid deflate stream. Bytes after the stream's end (fletcher32's
/// checksum) are ignored.
inline long long inflated_size(const unsigned char* data, std::size_t size, std::size_t limit) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return -1;
  unsigned char window[65536];
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(size, 0xFFFFFFFFu));
  std::size_t total = 0;
  for (;;) {
    z.next_out = window;
    z.avail_out = sizeof window;
    const int st = inflate(&z, Z_NO_FLUSH);
    total += sizeof window - z.avail_out;
    if (st == Z_STREAM_END) break;
    if (total > limit) break;
    if (st != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {  // corrupt or truncated
      inflateEnd(&z);
      return -1;
    }
  }
  inflateEnd(&z);
  return static_cast<long long>(total);
}

/// Before libhdf5 reads dataset `d` (chunked, `chunk_bytes` bytes per chunk): every chunk whose
/// deflate filter applies must inflate to at most a chunk (plus fletcher32's 4 bytes, when it
/// runs before deflate). `where` names the dataset in errors.
inline void check_compressed_chunks(hid_t d, hid_t dcpl, std::size_t chunk_bytes, const std::string& where) {
  const int nf = H5Pget_nfilters(dcpl);
  if (nf <= 0) return;
  int deflate_at = -1;
  for (int i = 0; i < nf; ++i) {
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    char name[64];
    const H5Z_filter_t id = H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &ncd, cd, sizeof name, name, nullptr);
    if (id == H5Z_FILTER_DEFLATE) deflate_at = i;
    else if (id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32 && deflate_at >= 0)
      throw unsupported_error(detail::cat(where, ": filter ", id, " after gzip compression in the dataset's pipeline (graft reads "
                                          "shuffle, gzip and fletcher32)"));
  }
  if (deflate_at < 0) return;
  // deflate is undone first unless fletcher32 comes after it (its 4 bytes trail the stream)
  const std::size_t limit = chunk_bytes + 4;
  struct Space {  // the dataset's file space (H5S_ALL is not accepted by libhdf5 1.10 here)
    hid_t id;
    ~Space() {
      if (id >= 0) H5Sclose(id);
    }
  } space{H5Dget_space(d)};
  hsize_t chunks = 0;
  if (space.id < 0 || H5Dget_num_chunks(d, space.id, &chunks) < 0)
    throw format_error(detail::cat(where, ": cannot list the dataset's chunks"));
  std::vector<unsigned char> raw;
  std::vector<hsize_t> offset(32);
  for (hsize_t c = 0; c < chunks; ++c) {
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    if (H5Dget_chunk_info(d, space.id, c, offset.data(), &mask, &addr, &size) < 0)
      throw format_error(detail::cat(where, ": cannot read the index of chunk ", c));
    if (mask & (1u << deflate_at)) continue;  // stored uncompressed (the optional filter was skipped)
    // deflate adds at most ~0.03 % to incompressible data (zlib's compressBound), fletcher32 4 bytes
    if (size > chunk_bytes + chunk_bytes / 100 + 1024)
      throw format_error(detail::cat(where, ": chunk ", c, " stores ", size, " compressed bytes for a chunk of ", chunk_bytes,
                                     " bytes: more than gzip ever writes"));
    raw.resize(static_cast<std::size_t>(size));
    std::uint32_t m2 = 0;
    if (size > 0 && H5Dread_chunk(d, H5P_DEFAULT, offset.data(), &m2, raw.data()) < 0)
      throw format_error(detail::cat(where, ": cannot read chunk ", c, " (truncated file?)"));
    const long long n = inflated_size(raw.data(), raw.size(), limit);
    if (n < 0) throw format_error(detail::cat(where, ": chunk ", c, " is not a valid gzip (deflate) stream"));
    if (static_cast<std::size_t>(n) > limit)
      throw format_error(detail::cat(where, ": chunk ", c, " of ", size, " compressed bytes inflates to more than the ", chunk_bytes,
                                     " bytes of a chunk (a decompression bomb or a corrupt file)"));
  }
}

}  // namespace deflate
}  // namespace h5
}  // namespace graft
