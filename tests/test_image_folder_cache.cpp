// fit() on an image folder with a frozen prefix: the epochs that train on the feature cache ask
// the folder for labels only (ImageFolder::load_targets), so they read and decode no file — shown
// by deleting every image after the first epoch.
#include <graft/graft.hpp>
#include <graft/images.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace graft;

TEST_CASE("fit on an image folder: cached epochs read no file", "[images][cache]") {
  const fs::path dir = fs::temp_directory_path() / ("graft_test_folder_cache_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::vector<fs::path> files;
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(dir / ("class_" + std::to_string(c)));
    for (int i = 0; i < 6; ++i) {
      data::Image img;
      img.height = img.width = 12;
      img.channels = 3;
      img.pixels.resize(12 * 12 * 3);
      for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = static_cast<std::uint8_t>((k * (7 + i) + 97 * c) % 256);
      files.push_back(dir / ("class_" + std::to_string(c)) / (std::to_string(i) + ".png"));
      data::write_png(files.back().string(), img);
    }
  }
  data::ImageFolderOptions io;
  io.image_size = {12, 12};
  io.seed = 3;
  io.verbose = false;
  auto train = data::image_dataset_from_directory<float>(dir.string(), io);
  REQUIRE(train.size() == 12);

  auto in = Input<float>({12, 12, 3}, "image");
  auto conv = std::make_shared<Conv2D<float>>(8, 3, 1, "same", "relu", true, 1, "frozen_conv");
  auto x = (*conv)(in);
  x = (*std::make_shared<GlobalAveragePooling2D<float>>(false, "pool"))(x);
  auto out = (*std::make_shared<Dense<float>>(2, "softmax", true, "head"))(x);
  Model<float> m(in, out, "folder_cache");
  conv->set_trainable(false);
  m.compile(std::make_shared<Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});

  auto remove_files = std::make_shared<LambdaCallback<float>>();
  remove_files->on_epoch_end_fn = [&](int epoch, Logs&) {
    if (epoch == 0)
      for (auto& f : files) fs::remove(f);
  };
  FitOptions<float> o;
  o.epochs = 3;
  o.batch_size = 4;
  o.seed = 5;
  o.verbose = 0;
  o.callbacks.push_back(remove_files);
  History h = m.fit(train, o);
  CHECK(h.feature_cache.rfind("memory", 0) == 0);
  CHECK(h["loss"].size() == 3);
  CHECK(!fs::exists(files[0]));

  // the labels alone still come; the images do not
  std::vector<Index> rows{0, 5, 11};
  std::vector<Tensor<float>> xs, ys;
  train.load_targets(rows.data(), 3, ys);
  REQUIRE(ys.size() == 1);
  for (int i = 0; i < 3; ++i) CHECK(ys[0][i] == static_cast<float>(train.labels()[static_cast<size_t>(rows[static_cast<size_t>(i)])]));
  CHECK_THROWS_AS(train.load(rows.data(), 3, xs, ys), io_error);
  Index bad = 12;
  CHECK_THROWS_AS(train.load_targets(&bad, 1, ys), value_error);
  fs::remove_all(dir);
}
