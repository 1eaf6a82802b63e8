// graft_image_cases — the C++ side of tests/images/check_images.py: decodes, resizes and indexes
// what the script asks for and writes the results for it to compare with PIL and Keras 3.
//
//   graft_image_cases decode OUT_DIR MODE FILE...            OUT_DIR/<file name>.<MODE>.bin or .err
//   graft_image_cases resize OUT_DIR MODE H W INTERP CROP PAD FILE...   float32 results, .bin or .err
//   graft_image_cases index DIR key=value...                 the dataset's rows, one "path<TAB>label" a line
//
// .bin: three little-endian int32 (height, width, channels), then the samples (uint8 for decode,
// float32 for resize). .err: the error's what().
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "graft/images.hpp"

namespace {

std::string base_name(const std::string& p) {
  const size_t k = p.find_last_of('/');
  return k == std::string::npos ? p : p.substr(k + 1);
}

void write_bin(const std::string& path, int h, int w, int c, const void* data, size_t bytes) {
  std::ofstream f(path, std::ios::binary);
  const std::int32_t hdr[3] = {h, w, c};
  f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

void write_err(const std::string& path, const std::string& what) { std::ofstream(path) << what; }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

void print_folder(const char* name, const graft::data::ImageFolder<float>& f) {
  std::cout << "== " << name << "\n";
  std::cout << "classes";
  for (const auto& c : f.class_names()) std::cout << "\t" << c;
  std::cout << "\n";
  for (size_t i = 0; i < f.file_paths().size(); ++i)
    std::cout << f.file_paths()[i] << "\t" << (f.labels().empty() ? -1 : f.labels()[i]) << "\n";
  for (const auto& s : f.skipped()) std::cout << "skipped\t" << s.path << "\t" << s.reason << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace graft::data;
  if (argc < 3) {
    std::cerr << "usage: graft_image_cases decode|resize|index ...\n";
    return 2;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "decode") {
      const std::string out = argv[2];
      const ColorMode mode = parse_color_mode(argv[3]);
      for (int i = 4; i < argc; ++i) {
        const std::string dst = out + "/" + base_name(argv[i]) + "." + argv[3];
        try {
          const Image img = read_image(argv[i], mode);
          write_bin(dst + ".bin", img.height, img.width, img.channels, img.pixels.data(), img.pixels.size());
        } catch (const graft::error& e) {
          write_err(dst + ".err", e.what());
        }
      }
      return 0;
    }
    if (cmd == "resize") {
      const std::string out = argv[2];
      const ColorMode mode = parse_color_mode(argv[3]);
      ResizeOptions o;
      o.height = std::stoi(argv[4]);
      o.width = std::stoi(argv[5]);
      o.interpolation = parse_interpolation(argv[6]);
      o.crop_to_aspect_ratio = std::string(argv[7]) == "1";
      o.pad_to_aspect_ratio = std::string(argv[8]) == "1";
      const std::string tag = graft::detail::cat(argv[3], ".", o.height, "x", o.width, ".", argv[6], ".", argv[7], argv[8]);
      for (int i = 9; i < argc; ++i) {
        const std::string dst = out + "/" + base_name(argv[i]) + "." + tag;
        try {
          const Image img = read_image(argv[i], mode);
          const std::vector<float> r = resize_image(img, o);
          write_bin(dst + ".bin", o.height, o.width, img.channels, r.data(), r.size() * sizeof(float));
        } catch (const graft::error& e) {
          write_err(dst + ".err", e.what());
        }
      }
      return 0;
    }
    if (cmd == "index") {
      ImageFolderOptions o;
      o.verbose = false;
      o.verify = "none";
      bool both = false;
      for (int i = 3; i < argc; ++i) {
        const std::string a = argv[i];
        const size_t eq = a.find('=');
        const std::string k = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
        if (k == "labels") o.labels = v;
        else if (k == "label_list") for (const auto& s : split(v, ',')) o.label_list.push_back(std::stoi(s));
        else if (k == "label_mode") o.label_mode = v;
        else if (k == "class_names") o.class_names = split(v, ',');
        else if (k == "shuffle") o.shuffle = v == "1";
        else if (k == "seed") o.seed = std::stoll(v);
        else if (k == "validation_split") o.validation_split = std::stod(v);
        else if (k == "subset") { if (v == "both") both = true; else o.subset = v; }
        else if (k == "follow_links") o.follow_links = v == "1";
        else if (k == "on_error") o.on_error = v;
        else if (k == "verify") o.verify = v;
        else if (k == "color_mode") o.color_mode = v;
        else throw graft::value_error("unknown option " + k);
      }
      if (both) {
        if (o.validation_split == 0) o.subset = "both";  // let the library report Keras' error
        auto s = image_dataset_from_directory_both<float>(argv[2], o);
        print_folder("training", s.training);
        print_folder("validation", s.validation);
      } else {
        print_folder("dataset", image_dataset_from_directory<float>(argv[2], o));
      }
      return 0;
    }
  } catch (const graft::error& e) {
    std::cout << "ERROR\t" << e.kind() << "\t" << e.message() << "\n";
    return 3;
  }
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
