// Fashion-MNIST for graft's example programs: the four *-ubyte.gz files of a folder (Debian's
// dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist), read with graft::data.
// When they are missing the program says how to get them and exits with status 3, which the test
// suite reports as a skipped test.
#pragma once

#include <graft/graft.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "example_args.hpp"

namespace example_data {

struct FashionMnist {
  graft::data::Dataset<float> train, test;  // images [N, 28, 28] in [0, 1], labels 0..9
};

inline FashionMnist load_fashion_mnist(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                                "t10k-labels-idx1-ubyte.gz"};
  for (const auto& f : files) {
    fs::path p = fs::path(dir) / f;
    if (!fs::exists(p)) {
      std::cerr << example_args::program_name() << ": Fashion-MNIST not found: expected " << p.string() << "\n"
                << "  `apt-get install dataset-fashion-mnist` provides it in /usr/share/datasets/fashion-mnist;\n"
                << "  or point --data-dir at a directory holding the four *-ubyte.gz files.\n";
      std::exit(3);
    }
  }
  auto path = [&](int i) { return (fs::path(dir) / files[i]).string(); };
  auto tr = graft::data::read_idx_pair<float>(path(0), path(1));
  auto te = graft::data::read_idx_pair<float>(path(2), path(3));
  return {graft::data::Dataset<float>(std::move(tr.images), std::move(tr.labels)),
          graft::data::Dataset<float>(std::move(te.images), std::move(te.labels))};
}

}  // namespace example_data
