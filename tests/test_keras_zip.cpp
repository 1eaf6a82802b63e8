// The .keras (zip) reader on hostile archives, built byte by byte here: path-traversal entry names,
// duplicate entries, encrypted entries, members over graft::limits().max_zip_member_bytes, members
// whose data is longer or shorter than their declared size, missing members. Each is refused with
// an error naming the archive and the member; well-formed stored and deflated archives read back.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "gradcheck.hpp"

using Catch::Matchers::Contains;

namespace {

struct Member {
  std::string name, data;
  bool deflate = false;
};

void put16(std::string& s, unsigned v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

std::string raw_deflate(const std::string& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// Offsets of each member's local header and central-directory entry, for patching.
struct Layout {
  std::vector<size_t> local, central;
};

/// A zip archive of `ms`, as zip tools write it (no data descriptors, no zip64).
std::string make_zip(const std::vector<Member>& ms, Layout* layout = nullptr) {
  std::string out, cd;
  Layout l;
  for (const auto& m : ms) {
    const std::string payload = m.deflate ? raw_deflate(m.data) : m.data;
    const auto crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(m.data.data()), static_cast<uInt>(m.data.size())));
    const auto offset = static_cast<std::uint32_t>(out.size());
    l.local.push_back(out.size());
    put32(out, 0x04034b50u);
    put16(out, 20), put16(out, 0), put16(out, m.deflate ? 8 : 0), put16(out, 0), put16(out, 0x21);
    put32(out, crc), put32(out, static_cast<std::uint32_t>(payload.size())), put32(out, static_cast<std::uint32_t>(m.data.size()));
    put16(out, static_cast<unsigned>(m.name.size())), put16(out, 0);
    out += m.name + payload;
    l.central.push_back(cd.size());
    put32(cd, 0x02014b50u);
    put16(cd, 20), put16(cd, 20), put16(cd, 0), put16(cd, m.deflate ? 8 : 0), put16(cd, 0), put16(cd, 0x21);
    put32(cd, crc), put32(cd, static_cast<std::uint32_t>(payload.size())), put32(cd, static_cast<std::uint32_t>(m.data.size()));
    put16(cd, static_cast<unsigned>(m.name.size())), put16(cd, 0), put16(cd, 0), put16(cd, 0), put16(cd, 0);
    put32(cd, 0), put32(cd, offset);
    cd += m.name;
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  for (auto& c : l.central) c += cd_offset;
  out += cd;
  put32(out, 0x06054b50u);
  put16(out, 0), put16(out, 0), put16(out, static_cast<unsigned>(ms.size())), put16(out, static_cast<unsigned>(ms.size()));
  put32(out, static_cast<std::uint32_t>(cd.size())), put32(out, cd_offset), put16(out, 0);
  if (layout) *layout = l;
  return out;
}

void patch32(std::string& s, size_t at, std::uint32_t v) {
  std::string b;
  put32(b, v);
  s.replace(at, 4, b);
}

std::string write(const std::string& name, const std::string& bytes) {
  const std::string p = graft_test::tmp_dir() + "/zip-" + name;
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

using graft_test::error_of;

/// A real Keras 3 config.json (a fixture's), so that loading gets past the config to the weights.
std::string fixture_config() {
  graft::zip::Archive z(graft_test::shared_path("keras-fixtures/dense_act_relu/model.keras"));
  const auto c = z.read("config.json");
  return std::string(c.begin(), c.end());
}
const std::string& config() {
  static const std::string c = fixture_config();
  return c;
}

}  // namespace

TEST_CASE(".keras reader: well-formed stored and deflated archives read back exactly", "[keras][zip]") {
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) % 251);
  const std::string p = write("ok.keras", make_zip({{"metadata.json", "{}"}, {"config.json", config(), true},
                                                    {"assets/", ""}, {"model.weights.h5", big, true}}));
  graft::zip::Archive z(p);
  CHECK(z.entries().size() == 4);
  CHECK(z.has("config.json"));
  CHECK_FALSE(z.has("model.weights.npz"));
  const auto w = z.read("model.weights.h5");
  CHECK(std::string(w.begin(), w.end()) == big);
  const auto c = z.read("config.json");
  CHECK(std::string(c.begin(), c.end()) == config());
  CHECK_THAT(error_of<graft::format_error>([&] { z.read("nope.json"); }), Contains("has no 'nope.json'"));
}

TEST_CASE(".keras reader: path-traversal entry names are refused", "[keras][zip][bad]") {
  for (const char* bad : {"../evil.h5", "/etc/passwd", "assets/../../x", "a\\..\\b", "C:evil", "a/\x01"}) {
    INFO(bad);
    const std::string p = write("trav.keras", make_zip({{"config.json", config()}, {bad, "x"}}));
    const std::string m = error_of<graft::format_error>([&] { graft::load_model<float>(p); });
    CHECK_THAT(m, Contains(p));
    CHECK_THAT(m, Contains("path-traversal"));
  }
  // names that merely contain dots are fine
  CHECK_NOTHROW(graft::zip::Archive(write("dots.keras", make_zip({{"a..b/c...json", "{}"}, {"..x", ""}}))));
}

TEST_CASE(".keras reader: duplicate and encrypted entries are refused", "[keras][zip][bad]") {
  const std::string dup = write("dup.keras", make_zip({{"config.json", config()}, {"config.json", "{}"}}));
  const std::string m = error_of<graft::format_error>([&] { graft::load_model<float>(dup); });
  CHECK_THAT(m, Contains(dup));
  CHECK_THAT(m, Contains("two entries named 'config.json'"));

  Layout l;
  std::string enc = make_zip({{"config.json", config()}, {"model.weights.h5", "secret"}}, &l);
  for (size_t at : {l.local[1] + 6, l.central[1] + 8}) enc[at] = static_cast<char>(enc[at] | 1);  // flag bit 0: encrypted
  const std::string pe = write("enc.keras", enc);
  const std::string me = error_of<graft::unsupported_error>([&] { graft::load_model<float>(pe); });
  CHECK_THAT(me, Contains("'model.weights.h5' is encrypted"));
}

TEST_CASE(".keras reader: member sizes are checked before and while inflating", "[keras][zip][bad]") {
  std::string data(5000, 'w');
  SECTION("over graft::limits().max_zip_member_bytes, refused before anything is allocated") {
    const std::string p = write("big.keras", make_zip({{"config.json", config()}, {"model.weights.h5", data}}));
    const auto saved = graft::limits().max_zip_member_bytes;
    graft::limits().max_zip_member_bytes = 4096;
    const std::string m = error_of<graft::format_error>([&] { graft::zip::Archive(p).read("model.weights.h5"); });
    graft::limits().max_zip_member_bytes = saved;
    CHECK_THAT(m, Contains(p));
    CHECK_THAT(m, Contains("'model.weights.h5' declares 5000 uncompressed bytes"));
    CHECK_THAT(m, Contains("graft::limits().max_zip_member_bytes"));
    CHECK(graft::zip::Archive(p).read("model.weights.h5").size() == 5000);  // within the default limit
  }
  SECTION("a declared size no compression reaches (a zip bomb's header)") {
    Layout l;
    std::string z = make_zip({{"config.json", config()}, {"model.weights.h5", data, true}}, &l);
    for (size_t at : {l.local[1] + 22, l.central[1] + 24}) patch32(z, at, 0xFFFFFF00u);
    const std::string p = write("bomb.keras", z);
    CHECK_THAT(error_of<graft::format_error>([&] { graft::zip::Archive(p).read("model.weights.h5"); }), Contains("zip bomb"));
  }
  SECTION("data longer than declared, stored or deflated") {
    for (bool deflate : {false, true}) {
      INFO(deflate);
      Layout l;
      std::string z = make_zip({{"config.json", config()}, {"model.weights.h5", data, deflate}}, &l);
      for (size_t at : {l.local[1] + 22, l.central[1] + 24}) patch32(z, at, 100);
      const std::string p = write("long.keras", z);
      CHECK_THAT(error_of<graft::format_error>([&] { graft::zip::Archive(p).read("model.weights.h5"); }),
                 Contains("'model.weights.h5' inflates to more than its declared 100 bytes"));
    }
  }
  SECTION("data shorter than declared") {
    Layout l;
    std::string z = make_zip({{"config.json", config()}, {"model.weights.h5", data, true}}, &l);
    for (size_t at : {l.local[1] + 22, l.central[1] + 24}) patch32(z, at, 6000);
    const std::string p = write("short.keras", z);
    CHECK_THAT(error_of<graft::format_error>([&] { graft::zip::Archive(p).read("model.weights.h5"); }),
               Contains("inflates to 5000 bytes, not its declared 6000"));
  }
}

TEST_CASE(".keras reader: missing members are named", "[keras][zip][bad]") {
  const std::string no_weights = write("now.keras", make_zip({{"metadata.json", "{}"}, {"config.json", config()}}));
  CHECK_THAT(error_of<graft::format_error>([&] { graft::load_model<float>(no_weights); }), Contains("no model.weights.h5"));
  const std::string no_config = write("noc.keras", make_zip({{"model.weights.h5", "x"}}));
  CHECK_THAT(error_of<graft::format_error>([&] { graft::load_model<float>(no_config); }), Contains("no config.json"));
}
