// Chollet's transfer-learning recipe (Deep Learning with Python, 2nd ed., 8.3) on a folder of
// real image files, with graft: the photos stay files on disk, as users keep them, and every
// stage reads them through image_dataset_from_directory.
//
// Setup: real Fashion-MNIST images (Debian dataset-fashion-mnist) written as a train /
// validation / test tree of class subfolders, half as gray PNG files and half as RGB JPEG files
// (graft::data::write_png / write_jpeg), the way a photo collection mixes formats and channel
// counts. The pretrained network: the Teachable Machine MobileNetV2 export of the shared Keras
// corpus (tf.keras 2.4, MobileNetV2 alpha 0.35, 224x224x3, nested Sequential models), cut after
// its global pooling layer (graft::cut_after). Its input range is [-1, 1]: a Rescaling layer in
// the new model maps the files' 0..255 pixels to it.
//
// The stages (each reads the image folders; test accuracy from graft's evaluate on the test
// folder):
//   (a) feature extraction: the base frozen, a new head trained on it. fit()'s automatic feature
//       cache runs the base once per image and trains the head on its cached outputs in later
//       epochs (History::feature_cache says what happened);
//   (b) feature extraction with data augmentation (RandomFlip, RandomRotation, RandomZoom layers
//       in the model): the augmented images differ every epoch, so the frozen base runs every
//       epoch (the cache stays off, saying why);
//   (c) fine-tuning: (b)'s model with the top block of the base unfrozen (BatchNormalization
//       layers kept frozen, as the Keras guide advises), trained on at a very low learning rate;
//   (d) the linear probe (graft::linear_probe): a softmax classifier with L2 on the pooled
//       activations of an inner layer of the base — the seed notes' advice for small datasets
//       unlike the network's own.
// Accuracies and wall times of every stage go to results.json; the models of (c) and (d) are
// saved as Keras .h5 files and reloaded.
#include <graft/graft.hpp>
#include <graft/images.hpp>

#include "../common/example_args.hpp"
#include "../common/fashion_mnist.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using graft::Index;
using graft::Model;
using graft::Shape;
using graft::Tensor;
using Clock = std::chrono::steady_clock;

#ifndef IMAGE_FOLDER_TRANSFER_DEFAULT_MODEL
#define IMAGE_FOLDER_TRANSFER_DEFAULT_MODEL ""
#endif

namespace {

const char* const kUsage = R"(Usage: image_folder_transfer [options]

Chollet's recipe on a folder of real image files: feature extraction with the automatic feature
cache, feature extraction with augmentation, fine-tuning the top of the base, and the linear probe
on an inner layer; accuracies and times in OUT/results.json.

Options:
  --model PATH         the pretrained Keras CNN (default: the Teachable Machine MobileNetV2
                       )" IMAGE_FOLDER_TRANSFER_DEFAULT_MODEL R"()
  --cut-at LAYER       the base ends after this layer (default
                       global_average_pooling2d_GlobalAveragePooling2D1)
  --fine-tune-from L   (c) unfreezes the base from this layer on (default block_16_expand)
  --probe-layers LIST  (d) layers, comma-separated (default block_6_expand_relu,block_13_expand_relu,
                       out_relu: inner blocks and the base's last activation)
  --classes LIST       Fashion-MNIST classes (default 5,6,7,8,9: sandal, shirt, sneaker, bag, ankle boot)
  --train N            training images per class (default 100)
  --val N              validation images per class (default 30)
  --test N             test images per class (default 100)
  --epochs-a N         (a) epochs (default 20)
  --epochs-b N         (b) epochs (default 4)
  --epochs-c N         (c) epochs (default 4)
  --epochs-d N         (d) epochs (default 30)
  --lr-probe LR        (d) Adam's learning rate (default 1e-2: the pooled activations of inner
                       layers are small, and a linear classifier on them learns slowly at 1e-3)
  --stages LIST        which stages to run, e.g. a,d (default a,b,c,d; c needs b)
  --data-dir DIR       Fashion-MNIST *-ubyte.gz files (default /usr/share/datasets/fashion-mnist)
  --out-dir DIR        images/, results.json, the saved models (default image_folder_transfer_out)
  --seed S             random seed (default 42)
  --threads N          graft's threads (default: OpenMP's default)
  --quick              small sizes and few epochs (the test suite's run, about a minute)
  --quiet              no progress lines
  --check              exit non-zero unless (a) and (d) beat chance by far, (a) used the feature
                       cache and (b) did not, (c) kept (b)'s accuracy, the frozen base is
                       bit-identical to the file's after (a), and the saved models reload with
                       identical predictions
  --help               this text
)";

const char* const kClassFolders[10] = {"tshirt_top", "trouser", "pullover", "dress", "coat",
                                       "sandal",     "shirt",   "sneaker",  "bag",   "ankle_boot"};

struct Args {
  std::string model = IMAGE_FOLDER_TRANSFER_DEFAULT_MODEL;
  std::string cut_at = "global_average_pooling2d_GlobalAveragePooling2D1";
  std::string fine_tune_from = "block_16_expand";
  std::vector<std::string> probe_layers{"block_6_expand_relu", "block_13_expand_relu", "out_relu"};
  std::vector<int> classes{5, 6, 7, 8, 9};
  Index train = 100, val = 30, test = 100;
  int epochs_a = 20, epochs_b = 4, epochs_c = 4, epochs_d = 30;
  double lr_probe = 1e-2;
  std::string stages = "a,b,c,d";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = "image_folder_transfer_out";
  std::uint64_t seed = 42;
  int threads = 0;
  bool quick = false, quiet = false, check = false;
};

using example_args::parse_int;
using example_args::usage_error;

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> r;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) r.push_back(item);
  return r;
}

Args parse_args(int argc, char** argv) {
  Args a;
  bool sizes_given[7] = {false};
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (f == "--model") a.model = value();
    else if (f == "--cut-at") a.cut_at = value();
    else if (f == "--fine-tune-from") a.fine_tune_from = value();
    else if (f == "--probe-layers") a.probe_layers = split_list(value());
    else if (f == "--classes") {
      a.classes.clear();
      for (auto& c : split_list(value())) {
        int k = static_cast<int>(parse_int(f, c, 0, 9));
        if (std::find(a.classes.begin(), a.classes.end(), k) != a.classes.end()) usage_error("--classes lists a class twice");
        a.classes.push_back(k);
      }
      if (a.classes.size() < 2) usage_error("--classes needs at least 2 classes");
    } else if (f == "--train") a.train = parse_int(f, value(), 1, 5000), sizes_given[0] = true;
    else if (f == "--val") a.val = parse_int(f, value(), 1, 1000), sizes_given[1] = true;
    else if (f == "--test") a.test = parse_int(f, value(), 1, 1000), sizes_given[2] = true;
    else if (f == "--epochs-a") a.epochs_a = static_cast<int>(parse_int(f, value(), 1, 10000)), sizes_given[3] = true;
    else if (f == "--epochs-b") a.epochs_b = static_cast<int>(parse_int(f, value(), 1, 10000)), sizes_given[4] = true;
    else if (f == "--epochs-c") a.epochs_c = static_cast<int>(parse_int(f, value(), 1, 10000)), sizes_given[5] = true;
    else if (f == "--epochs-d") a.epochs_d = static_cast<int>(parse_int(f, value(), 1, 10000)), sizes_given[6] = true;
    else if (f == "--lr-probe") a.lr_probe = example_args::parse_double(f, value());
    else if (f == "--stages") a.stages = value();
    else if (f == "--data-dir") a.data_dir = value();
    else if (f == "--out-dir") a.out_dir = value();
    else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0, 2147483647));
    else if (f == "--threads") a.threads = static_cast<int>(parse_int(f, value(), 1, 1024));
    else if (f == "--quick") a.quick = true;
    else if (f == "--quiet") a.quiet = true;
    else if (f == "--check") a.check = true;
    else usage_error("unknown option '" + f + "'");
  }
  if (a.quick) {  // sizes and epochs not given explicitly
    if (!sizes_given[0]) a.train = 16;
    if (!sizes_given[1]) a.val = 6;
    if (!sizes_given[2]) a.test = 20;
    if (!sizes_given[3]) a.epochs_a = 8;
    if (!sizes_given[4]) a.epochs_b = 1;
    if (!sizes_given[5]) a.epochs_c = 1;
    if (!sizes_given[6]) a.epochs_d = 30;
  }
  for (auto& s : split_list(a.stages))
    if (s != "a" && s != "b" && s != "c" && s != "d") usage_error("--stages lists a, b, c or d, got '" + s + "'");
  if (a.stages.find('c') != std::string::npos && a.stages.find('b') == std::string::npos)
    usage_error("stage c fine-tunes the model of stage b: --stages must include b");
  return a;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
std::string pct(double v) { return fmt(100.0 * v, 1) + "%"; }
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

bool has_stage(const Args& a, char s) {
  for (auto& x : split_list(a.stages))
    if (x[0] == s) return true;
  return false;
}

// ---- the image files ----------------------------------------------------------------------------

struct TreeInfo {
  Index files = 0, png = 0, jpeg = 0;
  std::uintmax_t bytes = 0;
  double seconds = 0;
};

/// OUT/images/{train,validation,test}/<class>/*.png|jpg from Fashion-MNIST: training and
/// validation images from its training set (shuffled), test images from its test set. Even
/// images: the original 28x28 gray pixels as PNG; odd ones: RGB JPEG at quality 90.
TreeInfo write_image_tree(const Args& a, const fs::path& root) {
  auto t0 = Clock::now();
  auto fm = example_data::load_fashion_mnist(a.data_dir);
  fs::remove_all(root);
  TreeInfo info;
  auto write_split = [&](const graft::data::Dataset<float>& d, const std::string& split, Index skip, Index per_class) {
    for (int c : a.classes) {
      const fs::path dir = root / split / kClassFolders[c];
      fs::create_directories(dir);
      Index seen = 0, written = 0;
      for (Index i = 0; i < d.size() && written < per_class; ++i) {
        if (static_cast<int>(d.y[i]) != c || seen++ < skip) continue;
        graft::data::Image img;
        img.height = static_cast<int>(d.x.dim(1));
        img.width = static_cast<int>(d.x.dim(2));
        img.channels = 1;
        img.pixels.resize(static_cast<size_t>(img.height * img.width));
        const float* px = d.x.data() + i * img.height * img.width;
        for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = static_cast<std::uint8_t>(std::lround(px[k] * 255.0f));
        char name[64];
        const bool png = written % 2 == 0;
        std::snprintf(name, sizeof name, "%s_%05ld.%s", split.c_str(), static_cast<long>(i), png ? "png" : "jpg");
        const fs::path p = dir / name;
        if (png) {
          graft::data::write_png(p.string(), img);
          ++info.png;
        } else {
          graft::data::convert_color(img, graft::data::ColorMode::rgb);  // a colour photo of a gray object
          graft::data::write_jpeg(p.string(), img, 90);
          ++info.jpeg;
        }
        info.bytes += fs::file_size(p);
        ++written;
        ++info.files;
      }
      if (written < per_class)
        throw graft::value_error("Fashion-MNIST has only " + std::to_string(written) + " images of class " + std::to_string(c) +
                                 " for the " + split + " folder");
    }
  };
  const auto pool = graft::data::shuffled(fm.train, a.seed);
  write_split(pool, "train", 0, a.train);
  write_split(pool, "validation", a.train, a.val);
  write_split(fm.test, "test", 0, a.test);
  info.seconds = seconds_since(t0);
  return info;
}

// ---- the model -------------------------------------------------------------------------------------

/// The pretrained network, freshly loaded (each stage starts from the file's weights), and its
/// base: the part up to --cut-at, sharing the loaded layers.
struct Base {
  std::shared_ptr<Model<float>> loaded, base;
  Shape input;  // (None, H, W, C)
};

Base load_base(const Args& a) {
  Base b;
  b.loaded = graft::load_model<float>(a.model);
  b.base = graft::cut_after(*b.loaded, a.cut_at);
  b.base->set_name("conv_base");
  b.input = b.base->input_shapes().at(0);
  if (b.input.size() != 4 || b.input[1] <= 0 || b.input[2] <= 0 || b.input[3] != 3)
    throw graft::value_error("the base needs a fixed (H, W, 3) image input, got " + graft::shape_str(b.input));
  return b;
}

/// image -> [augmentation] -> Rescaling to [-1, 1] -> base -> Dense(128, relu) -> Dropout(0.5)
/// -> Dense(classes, softmax): Chollet's densely connected classifier on the conv base.
std::shared_ptr<Model<float>> classifier(Base& b, Index classes, bool augment, std::uint64_t seed) {
  auto inputs = graft::Input<float>({b.input[1], b.input[2], 3}, "image");
  graft::KerasTensor<float> x = inputs;
  if (augment) {
    const long long s = static_cast<long long>(seed);
    x = (*std::make_shared<graft::RandomFlip<float>>("horizontal", s, "random_flip"))(x);
    x = (*std::make_shared<graft::RandomRotation<float>>(0.05, "reflect", "bilinear", s + 1, 0.0, "random_rotation"))(x);
    x = (*std::make_shared<graft::RandomZoom<float>>(0.1, graft::ImageFactor{}, "reflect", "bilinear", s + 2, 0.0, "random_zoom"))(x);
  }
  x = (*std::make_shared<graft::Rescaling<float>>(1.0 / 127.5, -1.0, "rescaling"))(x);  // MobileNetV2's preprocess_input
  x = (*b.base)(x);
  x = (*std::make_shared<graft::Dense<float>>(128, "relu", true, "head_dense"))(x);
  x = (*std::make_shared<graft::Dropout<float>>(0.5, "head_dropout"))(x);
  auto out = (*std::make_shared<graft::Dense<float>>(classes, "softmax", true, "head_output"))(x);
  b.base->set_trainable(false);
  return std::make_shared<Model<float>>(inputs, out, augment ? "augmented_transfer" : "feature_extraction");
}

// ---- stages ----------------------------------------------------------------------------------------

struct Folders {
  std::shared_ptr<graft::data::ImageFolder<float>> train, val, test;
};

struct StageResult {
  std::string id, what;
  double test_accuracy = 0, test_loss = 0, val_accuracy = -1;
  double fit_seconds = 0, eval_seconds = 0;
  std::vector<double> epoch_seconds;
  std::string feature_cache;
  int epochs = 0;
  Index trainable_params = 0;
  nlohmann::json to_json() const {
    return {{"stage", id},
            {"what", what},
            {"test_accuracy", test_accuracy},
            {"test_loss", test_loss},
            {"val_accuracy", val_accuracy},
            {"epochs", epochs},
            {"fit_seconds", fit_seconds},
            {"epoch_seconds", epoch_seconds},
            {"test_eval_seconds", eval_seconds},
            {"feature_cache", feature_cache},
            {"trainable_params", trainable_params}};
  }
};

Index count_params(const std::vector<graft::Param<float>*>& ps) {
  Index n = 0;
  for (auto* p : ps) n += p->value.size();
  return n;
}

/// fit on the training folder (validation folder each epoch), timing every epoch.
void train(Model<float>& m, const Folders& f, int epochs, const Args& a, StageResult& r, int initial_epoch = 0) {
  graft::FitOptions<float> o;
  o.epochs = initial_epoch + epochs;
  o.initial_epoch = initial_epoch;
  o.batch_size = 32;
  o.seed = a.seed;
  o.verbose = a.quiet ? 0 : 2;
  o.validation_source = f.val;
  auto timer = std::make_shared<graft::LambdaCallback<float>>();
  Clock::time_point t_epoch;
  timer->on_epoch_begin_fn = [&](int, const graft::Logs&) { t_epoch = Clock::now(); };
  timer->on_epoch_end_fn = [&](int, graft::Logs&) { r.epoch_seconds.push_back(seconds_since(t_epoch)); };
  o.callbacks.push_back(timer);
  r.trainable_params = count_params(m.trainable_weights());
  auto t0 = Clock::now();
  graft::History h = m.fit(*f.train, o);
  r.fit_seconds = seconds_since(t0);
  r.epochs = epochs;
  r.feature_cache = h.feature_cache;
  if (h.has("val_accuracy")) r.val_accuracy = h["val_accuracy"].back();
}

void test(Model<float>& m, const Folders& f, StageResult& r) {
  auto t0 = Clock::now();
  graft::Logs l = m.evaluate(*f.test, 32);
  r.eval_seconds = seconds_since(t0);
  r.test_accuracy = l.at("accuracy");
  r.test_loss = l.at("loss");
}

void report(const StageResult& r) {
  std::cout << "(" << r.id << ") " << r.what << ": test accuracy " << pct(r.test_accuracy) << " (loss " << fmt(r.test_loss, 4)
            << "), " << r.epochs << " epochs in " << fmt(r.fit_seconds, 1) << " s";
  if (r.epoch_seconds.size() > 1) {
    double later = 0;
    for (size_t i = 1; i < r.epoch_seconds.size(); ++i) later += r.epoch_seconds[i];
    std::cout << " (first epoch " << fmt(r.epoch_seconds[0], 1) << " s, later ones " << fmt(later / double(r.epoch_seconds.size() - 1), 2)
              << " s)";
  }
  std::cout << "; feature cache: " << r.feature_cache << "\n";
}

/// Save as a Keras .h5 file, reload, and compare predictions on the first test images.
bool save_and_reload(Model<float>& m, const Folders& f, const std::string& path, std::vector<std::string>& failures) {
  graft::save_model(m, path);
  auto back = graft::load_model<float>(path);
  std::vector<Index> rows(static_cast<size_t>(std::min<Index>(f.test->size(), 16)));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<Index>(i);
  graft::data::SubsetSource<float> few(f.test, rows);
  const bool same = m.predict(few).at(0) == back->predict(few).at(0);
  std::cout << "saved " << path << "; reloaded: predictions on " << rows.size() << " test images " << (same ? "identical" : "DIFFERENT") << "\n";
  if (!same) failures.push_back(path + " reloads with different predictions");
  return same;
}

int run(const Args& a) {
  const auto t_all = Clock::now();
  graft::set_random_seed(a.seed);
  if (a.threads > 0) graft::set_num_threads(a.threads);
  if (!fs::exists(a.model)) {  // the shared Keras corpus beside the checkout, or --model
    std::cerr << "image_folder_transfer: model " << (a.model.empty() ? std::string("(none configured)") : a.model)
              << " not found: give one with --model\n";
    return 3;
  }
  fs::create_directories(a.out_dir);
  const fs::path images = fs::path(a.out_dir) / "images";
  std::vector<std::string> failures;
  nlohmann::json results;

  // ---- the image files, then the folders as Keras reads them
  TreeInfo tree = write_image_tree(a, images);
  std::cout << "wrote " << tree.files << " image files (" << tree.png << " PNG, " << tree.jpeg << " JPEG, "
            << fmt(double(tree.bytes) / 1e6, 1) << " MB) under " << images.string() << " in " << fmt(tree.seconds, 1) << " s\n";
  // Each stage loads the network afresh (and releases it when done: a model keeps the buffers of
  // its last batch, hundreds of MB for this one at batch 32)
  Shape input, features;
  {
    Base b = load_base(a);
    input = b.input;
    features = b.base->output_shapes().at(0);
  }
  graft::data::ImageFolderOptions io;
  io.image_size = {static_cast<int>(input[1]), static_cast<int>(input[2])};
  io.color_mode = "rgb";
  io.seed = static_cast<std::int64_t>(a.seed);
  io.verbose = !a.quiet;
  Folders f;
  f.train = std::make_shared<graft::data::ImageFolder<float>>(graft::data::image_dataset_from_directory<float>((images / "train").string(), io));
  io.shuffle = false;
  f.val = std::make_shared<graft::data::ImageFolder<float>>(graft::data::image_dataset_from_directory<float>((images / "validation").string(), io));
  f.test = std::make_shared<graft::data::ImageFolder<float>>(graft::data::image_dataset_from_directory<float>((images / "test").string(), io));
  const Index classes = static_cast<Index>(f.train->class_names().size());
  const double chance = 1.0 / static_cast<double>(classes);
  std::cout << "classes:";
  for (auto& c : f.train->class_names()) std::cout << " " << c;
  std::cout << "\nbase: '" << a.cut_at << "' of " << a.model << ", input " << graft::shape_str(input) << ", output "
            << graft::shape_str(features) << "\n";

  std::vector<StageResult> stages;
  // ---- (a) feature extraction, the frozen base's outputs cached by fit()
  if (has_stage(a, 'a')) {
    StageResult r;
    r.id = "a";
    r.what = "feature extraction, frozen base, automatic feature cache";
    graft::set_random_seed(a.seed);  // every stage seeded alike: its numbers do not depend on --stages
    Base first = load_base(a);
    auto m = classifier(first, classes, false, a.seed);
    m->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
    if (!a.quiet) m->summary();
    train(*m, f, a.epochs_a, a, r);
    test(*m, f, r);
    report(r);
    if (r.feature_cache.rfind("memory", 0) != 0 && r.feature_cache.rfind("disk", 0) != 0)
      failures.push_back("(a) trained without the feature cache: " + r.feature_cache);
    if (!(r.test_accuracy >= chance + 0.25)) failures.push_back("(a) test accuracy " + pct(r.test_accuracy) + " is not well above chance");
    // the frozen base is untouched: every weight bit-identical to the file's
    auto original = graft::load_model<float>(a.model);
    std::map<std::string, std::vector<Tensor<float>>> orig;
    for (graft::Layer<float>* l : original->unique_layers()) orig[l->name()] = l->get_weights();
    Index checked = 0, changed = 0;
    for (graft::Layer<float>* l : first.base->unique_layers()) {
      if (l->weights().empty()) continue;
      ++checked;
      if (!orig.count(l->name()) || orig[l->name()] != l->get_weights()) ++changed;
    }
    std::cout << "frozen base after (a): " << checked << " layers with weights, " << changed << " changed\n";
    if (changed || !checked) failures.push_back("(a) changed the frozen base");
    stages.push_back(r);
  }

  // ---- (b) feature extraction with augmentation: the frozen base runs every epoch
  std::shared_ptr<Model<float>> augmented;  // (b)'s model, fine-tuned in (c)
  Base bb;
  if (has_stage(a, 'b')) {
    StageResult r;
    r.id = "b";
    r.what = "feature extraction with augmentation (flip, rotation, zoom), frozen base run every epoch";
    graft::set_random_seed(a.seed + 1);
    bb = load_base(a);
    augmented = classifier(bb, classes, true, a.seed);
    augmented->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
    train(*augmented, f, a.epochs_b, a, r);
    test(*augmented, f, r);
    report(r);
    if (r.feature_cache.rfind("off", 0) != 0) failures.push_back("(b) cached features below augmentation layers: " + r.feature_cache);
    stages.push_back(r);
  }

  // ---- (c) fine-tuning: the top of the base unfrozen, a very low learning rate
  if (has_stage(a, 'c')) {
    StageResult r;
    r.id = "c";
    r.what = "fine-tuning (b)'s model from '" + a.fine_tune_from + "' up, Adam 1e-5, BatchNormalization frozen";
    // the Keras guide: base.trainable = True, then freeze what lies below the top block
    bb.base->set_trainable(true);
    bool on = false;
    Index unfrozen = 0;
    for (graft::Layer<float>* l : bb.base->unique_layers()) {
      if (l->name() == a.fine_tune_from) on = true;
      const bool train_it = on && l->class_name() != "BatchNormalization";
      l->set_trainable(train_it);
      unfrozen += train_it && !l->weights().empty();
    }
    if (!on) throw graft::value_error("--fine-tune-from: the base has no layer '" + a.fine_tune_from + "'");
    augmented->compile(std::make_shared<graft::Adam<float>>(1e-5), "sparse_categorical_crossentropy", {"accuracy"});
    std::cout << "unfrozen: " << unfrozen << " layers with weights from '" << a.fine_tune_from << "' up\n";
    train(*augmented, f, a.epochs_c, a, r, a.epochs_b);
    test(*augmented, f, r);
    report(r);
    if (!(r.test_accuracy >= stages.back().test_accuracy - 0.1))
      failures.push_back("(c) lost accuracy: " + pct(r.test_accuracy) + " after " + pct(stages.back().test_accuracy));
    save_and_reload(*augmented, f, (fs::path(a.out_dir) / "fine_tuned.h5").string(), failures);
    stages.push_back(r);
  }
  augmented.reset();
  bb = Base();

  // ---- (d) linear probes on inner layers of the base
  if (has_stage(a, 'd')) {
    for (const std::string& layer : a.probe_layers) {
      StageResult r;
      r.id = "d";
      r.what = "linear probe on '" + layer + "' (global average pooling + softmax, L2 1e-4, Adam " + num(a.lr_probe) + ")";
      graft::set_random_seed(a.seed + 2);
      Base pb = load_base(a);
      auto inputs = graft::Input<float>({pb.input[1], pb.input[2], 3}, "image");
      auto x = (*std::make_shared<graft::Rescaling<float>>(1.0 / 127.5, -1.0, "rescaling"))(inputs);
      auto prepared = std::make_shared<Model<float>>(inputs, (*pb.base)(x), "prepared_base");
      graft::LinearProbeOptions po;
      po.epochs = a.epochs_d;
      po.learning_rate = a.lr_probe;
      po.seed = a.seed;
      po.validation = f.val;
      po.verbose = a.quiet ? 0 : 2;
      graft::History h;
      auto t0 = Clock::now();
      auto probe = graft::linear_probe(*prepared, layer, *f.train, po, &h);
      r.fit_seconds = seconds_since(t0);
      r.epochs = a.epochs_d;
      r.feature_cache = h.feature_cache;
      r.trainable_params = count_params(probe->trainable_weights());
      if (h.has("val_accuracy")) r.val_accuracy = h["val_accuracy"].back();
      test(*probe, f, r);
      report(r);
      if (!(r.test_accuracy >= chance + 0.2)) failures.push_back("(d) probe on " + layer + ": " + pct(r.test_accuracy) + " is not above chance");
      save_and_reload(*probe, f, (fs::path(a.out_dir) / ("probe_" + layer + ".h5")).string(), failures);
      stages.push_back(r);
    }
  }

  // ---- results
  const double total = seconds_since(t_all);
  std::cout << "\n== Results: " << f.train->size() << " training, " << f.val->size() << " validation, " << f.test->size()
            << " test images, " << classes << " classes (chance " << pct(chance) << "), " << graft::num_threads() << " thread(s)\n";
  for (auto& r : stages)
    std::cout << "  (" << r.id << ") " << std::left << std::setw(8) << pct(r.test_accuracy) << std::right << " test, "
              << std::setw(7) << fmt(r.fit_seconds, 1) << " s training, " << fmt(r.eval_seconds, 1) << " s testing  " << r.what << "\n";
  std::cout << "total " << fmt(total, 1) << " s\n";

  nlohmann::json js = nlohmann::json::array();
  for (auto& r : stages) js.push_back(r.to_json());
  std::vector<std::string> names;
  for (int c : a.classes) names.push_back(kClassFolders[c]);
  results = {{"model", a.model},
             {"cut_at", a.cut_at},
             {"classes", f.train->class_names()},
             {"images", {{"train", f.train->size()}, {"validation", f.val->size()}, {"test", f.test->size()},
                         {"png", tree.png}, {"jpeg", tree.jpeg}, {"bytes", tree.bytes}, {"write_seconds", tree.seconds}}},
             {"seed", a.seed},
             {"threads", graft::num_threads()},
             {"quick", a.quick},
             {"stages", js},
             {"total_seconds", total}};
  const std::string path_json = (fs::path(a.out_dir) / "results.json").string();
  graft::detail::atomic_write_text(path_json, results.dump(1) + "\n");
  std::cout << "wrote " << path_json << "\n";

  if (a.check) {
    std::ifstream in(path_json);
    const nlohmann::json back = nlohmann::json::parse(in);
    if (back.at("stages").size() != stages.size()) failures.push_back("results.json does not hold every stage");
    for (auto& m : failures) std::cerr << "CHECK FAILED: " << m << "\n";
    if (!failures.empty()) return 1;
    std::cout << "CHECK passed\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example_args::program_name() = "image_folder_transfer";
  Args args = parse_args(argc, argv);
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::cerr << "image_folder_transfer: " << e.what() << "\n";
    return 1;
  }
}
