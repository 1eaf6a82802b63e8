// graft — Keras 3's image_dataset_from_directory as a data Source: a folder of class subfolders
// of PNG, JPEG, GIF and BMP files, decoded and resized batch by batch (on the loop's worker
// thread when fit() prefetches), with Keras' arguments, defaults, checks, file order and
// validation split (data/image_index.hpp), colour conversion (data/image.hpp) and resize
// (data/image_resize.hpp).
//
//   using namespace graft::data;
//   ImageFolderOptions o;
//   o.image_size = {224, 224};
//   o.validation_split = 0.2;
//   o.seed = 1337;
//   auto [train, val] = image_dataset_from_directory_both<float>("photos", o);
//   // train.class_names(), train.file_paths(), train.labels(), train.skipped()
//   model.fit(train, ...);
//
// Samples are float images (H, W, C) with values 0..255 (Keras does not rescale either) and
// targets by label_mode: "int" one class index (shape ()), "categorical" one-hot (K), "binary"
// one 0/1 value (1), "none" no target. The order of the rows is Keras' (shuffled once with
// numpy's RandomState(seed) when shuffle is true); the per-epoch reshuffling that tf.data's
// shuffle buffer does in Keras is the training loop's job (the loop shuffles rows).
//
// Bad files (graft's on_error and verify options; Keras has neither: its pipeline fails on the
// first bad file it meets, mid-epoch):
//   verify="header" (default) reads each file's header when the dataset is made: the format from
//     the bytes (a text file named .jpg is caught), the size against
//     graft::limits().max_image_pixels (a header declaring 30000 x 30000 is refused before any
//     allocation), and a file whose last bytes are not its format's end marker (a truncated file)
//     is decoded in full there and then;
//   verify="full" decodes every file when the dataset is made;
//   verify="none" checks nothing up front (Keras' behaviour).
//   on_error="error" (default): a file failing the check is an error naming it (and the others);
//   on_error="skip": it is left out and listed in skipped() with the reason, after the split, so
//     the other files keep the subset Keras gives them.
// load() decodes the files of the rows asked for; a file that passed the check but fails to decode
// there (corrupt data inside a complete file, or changed on disk) is an error naming the file:
// graft never substitutes a made-up image for a bad one. verify="full" rules this out.
// Every image is converted to color_mode, so files of mixed channel counts (gray, gray + alpha,
// RGB, RGBA, palette) are fine, as in Keras: grayscale files are replicated to RGB, alpha dropped.
// data_format "channels_first" is refused (graft models are channels-last).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/data/image.hpp"
#include "graft/data/image_decode.hpp"
#include "graft/data/image_index.hpp"
#include "graft/data/image_resize.hpp"
#include "graft/data/source.hpp"

namespace graft {
namespace data {

/// image_dataset_from_directory's arguments (Keras 3 names and defaults) and graft's own.
struct ImageFolderOptions {
  /// "inferred" (labels from the class subfolders), "none" (no labels), or "explicit" (one label
  /// per file in label_list, in the order of the sorted file paths; a non-empty label_list with
  /// "inferred" means "explicit" too): Keras' labels="inferred" / None / [...].
  std::string labels = "inferred";
  std::vector<int> label_list;
  /// "int", "categorical", "binary" or "none".
  std::string label_mode = "int";
  /// Only with inferred labels: the class subfolders to use, in this order (a subset of them).
  std::vector<std::string> class_names;
  /// "grayscale", "rgb" or "rgba": 1, 3 or 4 channels.
  std::string color_mode = "rgb";
  /// Kept as a hint for fit() (Keras batches the dataset); 0 = not batched (Keras' None).
  int batch_size = 32;
  /// (height, width) every image is resized to.
  std::array<int, 2> image_size{256, 256};
  /// Shuffle the file list once (with numpy's RandomState(seed)); false: sorted order.
  bool shuffle = true;
  /// 0 <= seed < 2**32; unset: a random one (Keras: np.random.randint(1e6)).
  std::optional<std::int64_t> seed;
  /// Fraction of the files kept for validation (0: no split).
  double validation_split = 0.0;
  /// "" (all files), "training", "validation" ("both": image_dataset_from_directory_both).
  std::string subset;
  /// "bilinear", "nearest", "bicubic" or "area" (see data/image_resize.hpp).
  std::string interpolation = "bilinear";
  bool follow_links = false;
  bool crop_to_aspect_ratio = false;
  bool pad_to_aspect_ratio = false;
  /// "channels_last" only.
  std::string data_format = "channels_last";
  /// Print "Found N files belonging to K classes." and the split, as Keras does.
  bool verbose = true;
  /// graft: "error" or "skip" (files that fail the check are listed in skipped()).
  std::string on_error = "error";
  /// graft: "header", "full" or "none" (what is checked when the dataset is made).
  std::string verify = "header";
};

template <class T = float>
class ImageFolder;

template <class T = float>
struct ImageFolderSplit {
  ImageFolder<T> training, validation;
};

namespace detail {
template <class T>
ImageFolderSplit<T> make_image_folders(const std::string& directory, ImageFolderOptions o, bool both);
}  // namespace detail

/// The files of an image folder (one subset of it) as a Source: see the top of this file.
template <class T>
class ImageFolder : public Source<T> {
 public:
  ImageFolder() = default;

  Index size() const override { return static_cast<Index>(paths_.size()); }
  std::vector<Shape> input_shapes() const override { return {{resize_.height, resize_.width, color_mode_channels(color_)}}; }
  std::vector<Shape> target_shapes() const override {
    if (label_mode_ == "int") return {Shape{}};
    if (label_mode_ == "binary") return {Shape{1}};
    if (label_mode_ == "categorical") return {Shape{static_cast<Index>(class_names_.size())}};
    return {};
  }

  /// Decode and resize the files of rows[0..cnt) into x[0] (cnt, H, W, C); labels into y[0].
  /// Only reads immutable state: safe on a worker thread while the caller trains.
  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    const int C = color_mode_channels(color_);
    x.resize(1);
    x[0].resize({cnt, resize_.height, resize_.width, C});
    const size_t per = static_cast<size_t>(resize_.height) * static_cast<size_t>(resize_.width) * static_cast<size_t>(C);
    for (Index r = 0; r < cnt; ++r) load_image(rows[r], x[0].data() + static_cast<size_t>(r) * per);
    load_targets(rows, cnt, y);
  }

  /// The labels of rows[0..cnt) alone, no file read: what fit() asks for in the epochs that train
  /// on its cached features.
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const override {
    const std::vector<Shape> ts = target_shapes();
    y.resize(ts.size());
    if (ts.empty()) return;
    Shape s{cnt};
    s.insert(s.end(), ts[0].begin(), ts[0].end());
    y[0].resize(s);
    y[0].set_zero();
    const Index K = label_mode_ == "categorical" ? static_cast<Index>(class_names_.size()) : 1;
    for (Index r = 0; r < cnt; ++r) {
      if (rows[r] < 0 || rows[r] >= size()) throw value_error(graft::detail::cat(describe(), ": row ", rows[r], " out of range"));
      const int label = labels_[static_cast<size_t>(rows[r])];
      if (label_mode_ == "categorical")
        y[0][r * K + label] = T(1);
      else
        y[0][r] = static_cast<T>(label);
    }
  }

  /// Decode and resize one file into out (H * W * C values).
  void load_image(Index row, T* out) const {
    if (row < 0 || row >= size()) throw value_error(graft::detail::cat(describe(), ": row ", row, " out of range"));
    const std::string& path = paths_[static_cast<size_t>(row)];
    try {
      const Image img = read_image(path, color_);
      resize_image(img, resize_, out);
    } catch (const error& e) {
      if (on_error_ != "skip") throw;
      rethrow_with_prefix(e, graft::detail::cat(describe(), ": on_error=\"skip\" (the file passed the verify=\"", verify_,
                                                "\" check when the folder was indexed; verify=\"full\" decodes every file then)"));
    }
  }

  std::string describe() const override {
    return graft::detail::cat("image folder '", directory_, "' (", paths_.size(), " files", class_names_.empty() ? "" : ", ",
                              class_names_.empty() ? "" : std::to_string(class_names_.size()) + " classes",
                              subset_.empty() ? "" : ", " + subset_ + " subset", ")");
  }
  std::uint64_t fingerprint() const override { return fingerprint_; }

  const std::string& directory() const { return directory_; }
  /// Class names in label order (empty with label_mode "none").
  const std::vector<std::string>& class_names() const { return class_names_; }
  /// Files in row order (Keras' file_paths).
  const std::vector<std::string>& file_paths() const { return paths_; }
  /// Integer label per row (empty with label_mode "none").
  const std::vector<int>& labels() const { return labels_; }
  /// Files left out with on_error="skip" (and folders that could not be listed), with the reason.
  const std::vector<SkippedImage>& skipped() const { return skipped_; }
  int batch_size() const { return batch_size_; }
  const std::string& label_mode() const { return label_mode_; }
  ColorMode color_mode() const { return color_; }
  const ResizeOptions& resize_options() const { return resize_; }
  bool shuffle() const { return shuffle_; }
  std::int64_t seed() const { return seed_; }
  const std::string& subset() const { return subset_; }

 private:
  template <class U>
  friend ImageFolderSplit<U> detail::make_image_folders(const std::string&, ImageFolderOptions, bool);

  std::string directory_, subset_, label_mode_ = "int", on_error_ = "error", verify_ = "header";
  std::vector<std::string> paths_, class_names_;
  std::vector<int> labels_;
  std::vector<SkippedImage> skipped_;
  ColorMode color_ = ColorMode::rgb;
  ResizeOptions resize_;
  int batch_size_ = 32;
  bool shuffle_ = true;
  std::int64_t seed_ = 0;
  std::uint64_t fingerprint_ = 0;
};

namespace detail {

inline std::string image_allowlist() { return "('.bmp', '.gif', '.jpeg', '.jpg', '.png')"; }

/// Check every file of rows [begin, end): returns the rows kept; failures go to `skipped` or,
/// with on_error "error", into one error naming them.
inline std::vector<size_t> verify_image_files(const std::vector<std::string>& paths, size_t begin, size_t end, const std::string& verify,
                                              bool skip, std::vector<SkippedImage>& skipped) {
  std::vector<size_t> keep;
  std::vector<SkippedImage> bad;
  for (size_t i = begin; i < end; ++i) {
    if (verify == "none") {
      keep.push_back(i);
      continue;
    }
    try {
      check_image_file(paths[i], verify == "full" ? ImageCheck::full : ImageCheck::header);
      keep.push_back(i);
    } catch (const error& e) {
      bad.push_back({paths[i], e.message()});
    }
  }
  if (!bad.empty() && !skip) {
    std::string m = graft::detail::cat("image_dataset_from_directory: ", bad.size(), " file(s) cannot be decoded (on_error=\"skip\" leaves them out and lists them in skipped()): ");
    for (size_t i = 0; i < bad.size() && i < 5; ++i) m += (i ? "; " : "") + bad[i].reason;
    if (bad.size() > 5) m += graft::detail::cat("; and ", bad.size() - 5, " more");
    throw format_error(m);
  }
  skipped.insert(skipped.end(), bad.begin(), bad.end());
  return keep;
}

/// Builds the training and validation folders (subset "both"), or the one asked for in
/// `training` (the validation member is then empty).
template <class T>
ImageFolderSplit<T> make_image_folders(const std::string& directory, ImageFolderOptions o, bool both) {
  const char* fn = "image_dataset_from_directory";
  // --- Keras' argument checks, in Keras' order
  const bool explicit_labels = o.labels == "explicit" || (o.labels == "inferred" && !o.label_list.empty());
  if (o.labels != "inferred" && o.labels != "none" && o.labels != "explicit")
    throw value_error(graft::detail::cat(fn, ": labels must be \"inferred\", \"none\" or \"explicit\" (with label_list); received labels=\"", o.labels, "\""));
  if (o.labels == "none" && !o.label_list.empty()) throw value_error(graft::detail::cat(fn, ": labels=\"none\" with a label_list"));
  if (explicit_labels && !o.class_names.empty())
    throw value_error(graft::detail::cat(fn, ": class_names can only be passed with labels=\"inferred\" (the class names of explicit labels are their sorted values)"));
  if (o.label_mode != "int" && o.label_mode != "categorical" && o.label_mode != "binary" && o.label_mode != "none")
    throw value_error(graft::detail::cat(fn, ": label_mode must be one of \"int\", \"categorical\", \"binary\", or \"none\"; received label_mode=\"", o.label_mode, "\""));
  const bool no_labels = o.labels == "none" || o.label_mode == "none";
  if (no_labels) {
    o.label_mode = "none";
    if (!o.class_names.empty()) throw value_error(graft::detail::cat(fn, ": when there are no labels (labels or label_mode \"none\"), class_names cannot be specified"));
  }
  const ColorMode color = parse_color_mode(o.color_mode);
  if (o.image_size[0] <= 0 || o.image_size[1] <= 0)
    throw value_error(graft::detail::cat(fn, ": invalid image_size (", o.image_size[0], ", ", o.image_size[1], "): expected 2 positive integers"));
  ResizeOptions ro;
  ro.height = o.image_size[0];
  ro.width = o.image_size[1];
  ro.interpolation = parse_interpolation(o.interpolation);
  ro.crop_to_aspect_ratio = o.crop_to_aspect_ratio;
  ro.pad_to_aspect_ratio = o.pad_to_aspect_ratio;
  detail::check_resize_options(ro);
  if (o.data_format != "channels_last")
    throw unsupported_error(graft::detail::cat(fn, ": data_format=\"", o.data_format, "\": graft images are channels_last"));
  if (o.batch_size < 0) throw value_error(graft::detail::cat(fn, ": batch_size must be >= 0 (0: not batched), got ", o.batch_size));
  if (o.on_error != "error" && o.on_error != "skip") throw value_error(graft::detail::cat(fn, ": on_error must be \"error\" or \"skip\", got \"", o.on_error, "\""));
  if (o.verify != "header" && o.verify != "full" && o.verify != "none")
    throw value_error(graft::detail::cat(fn, ": verify must be \"header\", \"full\" or \"none\", got \"", o.verify, "\""));
  // check_validation_split_arg
  const double vs = o.validation_split;
  if (both) o.subset = "both";
  if (vs != 0 && !(vs > 0 && vs < 1)) throw value_error(graft::detail::cat(fn, ": validation_split must be between 0 and 1, received: ", vs));
  if ((vs != 0 || !o.subset.empty()) && !(vs != 0 && !o.subset.empty()))
    throw value_error(graft::detail::cat(fn, ": if subset is set, validation_split must be set, and inversely"));
  if (!o.subset.empty() && o.subset != "training" && o.subset != "validation" && o.subset != "both")
    throw value_error(graft::detail::cat(fn, ": subset must be either \"training\", \"validation\" or \"both\", received: \"", o.subset, "\""));
  if (o.subset == "both" && !both)
    throw value_error(graft::detail::cat(fn, ": subset=\"both\" gives two datasets: call image_dataset_from_directory_both"));
  if (vs != 0 && o.shuffle && !o.seed)
    throw value_error(graft::detail::cat(fn, ": if using validation_split and shuffling the data, you must provide a seed, "
                                         "to make sure that there is no overlap between the training and validation subset"));
  std::int64_t seed = 0;
  if (o.seed) {
    seed = *o.seed;
    NumpyRandomState check(seed);  // range check
  } else {
    seed = static_cast<std::int64_t>(std::random_device{}() % 1000000u);
  }

  // --- index_directory
  detail::DirectoryIndex ix = detail::index_directory(directory, o.labels == "inferred" && !explicit_labels && !no_labels, o.class_names, o.follow_links);
  if (!ix.unreadable.empty() && o.on_error != "skip")
    throw io_error(graft::detail::cat(fn, ": ", ix.unreadable[0].path, ": ", ix.unreadable[0].reason));
  if (ix.no_class_folders)
    throw value_error(graft::detail::cat(fn, ": no class subfolders in ", directory,
                                         " (labels=\"inferred\" takes one class per subfolder; labels=\"none\" reads the images of the whole tree)"));
  std::vector<int> labels;
  std::vector<std::string> class_names = ix.class_names;
  if (explicit_labels) {
    if (o.label_list.size() != ix.paths.size())
      throw value_error(graft::detail::cat(fn, ": expected the lengths of labels to match the number of files in the target directory. len(labels) is ",
                                           o.label_list.size(), " while we found ", ix.paths.size(), " files in directory ", directory));
    labels = o.label_list;
    std::vector<int> u = labels;
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    class_names.clear();
    for (int v : u) class_names.push_back(std::to_string(v));
    const int K = static_cast<int>(class_names.size());
    for (int v : labels)
      if ((o.label_mode == "categorical" && (v < 0 || v >= K)) || (o.label_mode == "binary" && v != 0 && v != 1))
        throw value_error(graft::detail::cat(fn, ": label ", v, " with label_mode=\"", o.label_mode, "\" and ", K,
                                             " distinct labels: expected ", o.label_mode == "binary" ? "0 or 1" : "0 .. " + std::to_string(K - 1)));
  } else if (!no_labels) {
    labels = ix.labels;
  } else {
    class_names.clear();
  }
  if (o.verbose) {
    if (no_labels)
      std::cout << "Found " << ix.paths.size() << " files." << std::endl;
    else
      std::cout << "Found " << ix.paths.size() << " files belonging to " << class_names.size() << " classes." << std::endl;
  }
  std::vector<std::string> paths = std::move(ix.paths);
  if (o.shuffle) {
    NumpyRandomState(seed).shuffle(paths);
    if (!labels.empty()) NumpyRandomState(seed).shuffle(labels);
  }
  if (o.label_mode == "binary" && class_names.size() != 2)
    throw value_error(graft::detail::cat(fn, ": when passing label_mode=\"binary\", there must be exactly 2 class_names; received ", class_names.size()));

  // --- the split, then the checks of the files kept
  const size_t n = paths.size();
  if (n == 0)
    throw value_error(graft::detail::cat(fn, ": no images found in directory ", directory, ". Allowed formats: ", detail::image_allowlist()));
  if (vs != 0 && static_cast<size_t>(vs * static_cast<double>(n)) == 0)
    throw value_error(graft::detail::cat(fn, ": validation_split=", vs, " of ", n, " files selects no validation file (Keras would leave no training file)"));
  auto make = [&](const std::string& subset) {
    ImageFolder<T> f;
    const std::pair<size_t, size_t> range = detail::split_range(n, vs, subset);
    if (range.first == range.second)
      throw value_error(graft::detail::cat(fn, ": no ", subset.empty() ? "" : subset + " ", "images found in directory ", directory,
                                           ". Allowed formats: ", detail::image_allowlist()));
    if (o.verbose && !subset.empty())
      std::cout << "Using " << range.second - range.first << " files for " << subset << "." << std::endl;
    f.skipped_ = ix.unreadable;
    const std::vector<size_t> keep = detail::verify_image_files(paths, range.first, range.second, o.verify, o.on_error == "skip", f.skipped_);
    if (keep.empty())
      throw value_error(graft::detail::cat(fn, ": every one of the ", range.second - range.first, " files", subset.empty() ? "" : " for " + subset,
                                           " in ", directory, " failed the check (see skipped reasons: ", f.skipped_.back().reason, ")"));
    std::uint64_t h = detail::fnv_basis;
    for (size_t i : keep) {
      f.paths_.push_back(paths[i]);
      if (!labels.empty()) f.labels_.push_back(labels[i]);
      detail::fnv_mix(h, paths[i]);
      std::error_code ec;
      const std::uint64_t sz = static_cast<std::uint64_t>(std::filesystem::file_size(paths[i], ec));
      detail::fnv_mix(h, &sz, sizeof sz);
      if (!labels.empty()) detail::fnv_mix(h, &labels[i], sizeof(int));
    }
    f.directory_ = directory;
    f.subset_ = subset;
    f.label_mode_ = o.label_mode;
    f.class_names_ = class_names;
    f.color_ = color;
    f.resize_ = ro;
    f.batch_size_ = o.batch_size;
    f.shuffle_ = o.shuffle;
    f.seed_ = seed;
    f.on_error_ = o.on_error;
    f.verify_ = o.verify;
    const int shape[4] = {ro.height, ro.width, color_mode_channels(color), static_cast<int>(ro.interpolation)};
    detail::fnv_mix(h, shape, sizeof shape);
    detail::fnv_mix(h, f.label_mode_);
    f.fingerprint_ = h;
    return f;
  };
  ImageFolderSplit<T> out;
  if (both) {
    out.training = make("training");
    out.validation = make("validation");
  } else {
    out.training = make(o.subset);
  }
  return out;
}

}  // namespace detail

/// keras.utils.image_dataset_from_directory(directory, ...): one dataset (subset "", "training"
/// or "validation").
template <class T = float>
ImageFolder<T> image_dataset_from_directory(const std::string& directory, const ImageFolderOptions& options = {}) {
  return std::move(detail::make_image_folders<T>(directory, options, false).training);
}

/// image_dataset_from_directory(..., subset="both"): the training and the validation datasets.
template <class T = float>
ImageFolderSplit<T> image_dataset_from_directory_both(const std::string& directory, const ImageFolderOptions& options) {
  return detail::make_image_folders<T>(directory, options, true);
}

}  // namespace data
}  // namespace graft
