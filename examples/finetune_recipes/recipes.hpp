// The fine-tuning recipes compared by finetune_recipes (main.cpp): each is a function composing
// graft's calls on a pretrained base with a new head. Nothing here is library logic: layer groups,
// discriminative rates, gradual unfreezing, the 1-cycle policy, the LR finder, Keras' SGDR
// schedule, fine_tune and L2-SP all come from graft (include/graft/train/).
//
// Every recipe gets the same budget, epochs_frozen + epochs_unfrozen epochs over the seed's
// training images, and starts from the same new head for a given seed (same initial weights
// whatever the recipe), so the recipes of one seed differ only in how they train.
#pragma once

#include <graft/graft.hpp>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace recipes {

using graft::Index;
using graft::Layer;
using graft::Model;
using graft::Sequential;
using graft::Tensor;
using graft::data::Dataset;
using OptPtr = std::shared_ptr<graft::Optimizer<float>>;

/// A model to fine-tune: `base` (the reused, pretrained layers: a nested model) then `head` (the
/// new layers, a nested Sequential), both inside `model`.
struct Transfer {
  std::shared_ptr<Sequential<float>> model;
  std::shared_ptr<Model<float>> base;
  std::shared_ptr<Sequential<float>> head;
};

/// A pretrained base to reuse. build(seed) gives a fresh copy of it (clone + weights: the
/// pretrained model itself is never trained) under a new head whose initial weights depend on the
/// seed only. `pretrained` is the base itself, whose output is cached while a recipe keeps the
/// base frozen.
struct Source {
  std::string name;
  std::function<Transfer(std::uint64_t seed)> build;
  std::shared_ptr<Model<float>> pretrained;
};

/// What a task fixes for every recipe.
struct TaskConfig {
  std::string name;
  std::string loss;  ///< binary_crossentropy (1 sigmoid output) or sparse_categorical_crossentropy
  double chance = 0.5;
  int epochs_frozen = 4, epochs_unfrozen = 16;
  Index batch_size = 32;
  /// The plain recipe's optimizer and learning rates (head, then after unfreezing); discriminative
  /// and gradual use the same optimizer at lr_head.
  std::string plain_optimizer = "SGD";
  double lr_head = 1e-2, lr_low = 1e-4;
  /// Adam's rate for the recipes built on Adam (sgdr, l2sp; one_cycle's placeholder before lr_find).
  double lr_adam = 1e-3;
  /// Training from scratch: the optimizer and its rate.
  std::string scratch_optimizer = "SGD";
  double lr_scratch = 1e-3;
  /// Layer groups (graft::layer_groups) and the discriminative factor (ULMFiT: 2.6).
  int n_groups = 3;
  double discriminative_factor = 2.6;
  /// L2-SP's alpha (towards the pretrained weights) and beta (the new head).
  double l2sp_alpha = 0.1, l2sp_beta = 0.01;
};

/// One seed of a task: its training images (drawn with the seed) and the common test set, and the
/// frozen bases' outputs, computed once per source and shared by the recipes.
struct SeedData {
  std::uint64_t seed = 0;
  const Dataset<float>* train = nullptr;
  const Dataset<float>* test = nullptr;
  std::map<std::string, Tensor<float>> features;  ///< by "source/train" and "source/test"

  const Tensor<float>& cached(const Source& s, const char* which) {
    const std::string key = s.name + "/" + which;
    auto it = features.find(key);
    if (it == features.end())
      it = features.emplace(key, s.pretrained->predict(std::string(which) == "train" ? train->x : test->x)).first;
    return it->second;
  }
};

/// A recipe's result on one seed.
struct Outcome {
  double accuracy = 0, loss = 0;
  double seconds = 0;
  nlohmann::json info = nlohmann::json::object();
  std::vector<std::pair<std::string, graft::LRFindResult>> lr_finds;  ///< (stage, curve)
};

inline OptPtr make_optimizer(const std::string& name, double lr) {
  if (name == "SGD") return std::make_shared<graft::SGD<float>>(lr);
  if (name == "Adam") return std::make_shared<graft::Adam<float>>(lr);
  if (name == "RMSprop") return std::make_shared<graft::RMSprop<float>>(lr);
  throw graft::value_error("unknown optimizer " + name);
}

inline graft::FitOptions<float> fit_options(const TaskConfig& c, const SeedData& d, int epochs, int stage) {
  graft::FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = c.batch_size;
  o.seed = d.seed * 7919 + static_cast<std::uint64_t>(stage);  // the batch order: same for every recipe
  o.verbose = 0;
  return o;
}

/// Unfreeze the base; its BatchNormalization layers stay frozen, in inference mode (the Keras
/// transfer-learning guide: batch statistics of a few hundred images would undo the pretraining).
inline void unfreeze_base(Transfer& t) { graft::unfreeze(*t.base); }

/// Train the new head alone on the frozen base's cached output (what training the whole model
/// with the base frozen computes: the base holds no Dropout and its BatchNormalization runs in
/// inference mode), then report the whole model's test accuracy at that point.
inline void train_head(const TaskConfig& c, const Source& s, SeedData& d, Transfer& t, OptPtr opt, int epochs,
                       std::vector<std::shared_ptr<graft::Callback<float>>> callbacks, Outcome& out) {
  t.base->set_trainable(false);
  t.head->compile(std::move(opt), c.loss, {"accuracy"});
  auto o = fit_options(c, d, epochs, 1);
  o.callbacks = std::move(callbacks);
  if (epochs > 0) t.head->fit(d.cached(s, "train"), d.train->y, o);
  out.info["accuracy_after_head"] = t.head->evaluate(d.cached(s, "test"), d.test->y).at("accuracy");
}

inline void finish(Transfer& t, const SeedData& d, Outcome& out) {
  auto r = t.model->evaluate(d.test->x, d.test->y);
  out.accuracy = r.at("accuracy");
  out.loss = r.at("loss");
}

inline graft::LRFindOptions lr_find_options(const TaskConfig& c, const SeedData& d) {
  graft::LRFindOptions o;
  o.batch_size = c.batch_size;
  o.seed = d.seed;
  return o;
}

// ---- the recipes ---------------------------------------------------------------------------------

/// No transfer: the same architecture from random weights, trained for the whole budget.
inline Outcome scratch(const TaskConfig& c, const Source& random_init, SeedData& d) {
  Outcome out;
  Transfer t = random_init.build(d.seed);
  t.model->compile(make_optimizer(c.scratch_optimizer, c.lr_scratch), c.loss, {"accuracy"});
  t.model->fit(d.train->x, d.train->y, fit_options(c, d, c.epochs_frozen + c.epochs_unfrozen, 0));
  finish(t, d, out);
  return out;
}

/// Hands-On ML / the Keras guide: freeze the reused layers, train the head, unfreeze, train on at
/// a lower learning rate.
inline Outcome plain(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  train_head(c, s, d, t, make_optimizer(c.plain_optimizer, c.lr_head), c.epochs_frozen, {}, out);
  unfreeze_base(t);
  t.model->compile(make_optimizer(c.plain_optimizer, c.lr_low), c.loss, {"accuracy"});
  t.model->fit(d.train->x, d.train->y, fit_options(c, d, c.epochs_unfrozen, 2));
  finish(t, d, out);
  return out;
}

/// A control for plain: the same, but the rate is not lowered after unfreezing (lr_head in both
/// phases, as the Hands-On ML notebook does with SGD(1e-3)).
inline Outcome plain_same_lr(const TaskConfig& c, const Source& s, SeedData& d) {
  TaskConfig same = c;
  same.lr_low = c.lr_head;
  return plain(same, s, d);
}

/// ULMFiT's discriminative learning rates: the head phase as plain, then every layer group
/// trains, the top one at the head's rate and each group below discriminative_factor times slower.
inline Outcome discriminative(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  train_head(c, s, d, t, make_optimizer(c.plain_optimizer, c.lr_head), c.epochs_frozen, {}, out);
  unfreeze_base(t);
  auto groups = graft::layer_groups(*t.model, c.n_groups);
  graft::set_discriminative_lrs(groups, c.discriminative_factor);
  t.model->compile(make_optimizer(c.plain_optimizer, c.lr_head), c.loss, {"accuracy"});
  t.model->fit(d.train->x, d.train->y, fit_options(c, d, c.epochs_unfrozen, 2));
  out.info["lr_multipliers"] = nlohmann::json::array();
  for (auto& g : groups) out.info["lr_multipliers"].push_back(g.front()->lr_multiplier());
  finish(t, d, out);
  return out;
}

/// ULMFiT's gradual unfreezing: one optimizer at the head's rate for the whole budget; the top
/// layer group trains first and one more group joins every `every` epochs, all of them by the
/// epoch where plain unfreezes.
inline Outcome gradual(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  unfreeze_base(t);  // the callback keeps the BatchNormalization flags it finds
  const int every = std::max(1, c.epochs_frozen / std::max(1, c.n_groups - 1));
  auto o = fit_options(c, d, c.epochs_frozen + c.epochs_unfrozen, 0);
  auto unfreezing = std::make_shared<graft::GradualUnfreezing<float>>(c.n_groups, every);
  o.callbacks.push_back(unfreezing);
  t.model->compile(make_optimizer(c.plain_optimizer, c.lr_head), c.loss, {"accuracy"});
  t.model->fit(d.train->x, d.train->y, o);
  out.info["unfreeze_every_epochs"] = every;
  out.info["groups_training_at_end"] = unfreezing->unfrozen_groups();
  finish(t, d, out);
  return out;
}

/// fastai's workflow: lr_find on the head (base frozen), fit_one_cycle at its suggestion;
/// unfreeze, lr_find on the whole model, fit_one_cycle at that suggestion (Adam).
inline Outcome one_cycle(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  t.base->set_trainable(false);
  t.head->compile(make_optimizer("Adam", c.lr_adam), c.loss, {"accuracy"});
  auto r1 = graft::lr_find(*t.head, d.cached(s, "train"), d.train->y, lr_find_options(c, d));
  train_head(c, s, d, t, make_optimizer("Adam", c.lr_adam), c.epochs_frozen,
             {std::make_shared<graft::OneCycle<float>>(r1.suggestion())}, out);
  unfreeze_base(t);
  t.model->compile(make_optimizer("Adam", c.lr_adam), c.loss, {"accuracy"});
  auto r2 = graft::lr_find(*t.model, d.train->x, d.train->y, lr_find_options(c, d));
  auto o = fit_options(c, d, c.epochs_unfrozen, 2);
  o.callbacks.push_back(std::make_shared<graft::OneCycle<float>>(r2.suggestion()));
  t.model->fit(d.train->x, d.train->y, o);
  out.info["lr_head"] = r1.suggestion();
  out.info["lr_unfrozen"] = r2.suggestion();
  out.lr_finds = {{"head", r1}, {"unfrozen", r2}};
  finish(t, d, out);
  return out;
}

/// SGDR: the head phase on Adam at lr_adam, then the whole model with Keras' CosineDecayRestarts
/// on the optimizer (t_mul 2: three cycles of 1, 2 and 4 units that end with the budget).
inline Outcome sgdr(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  train_head(c, s, d, t, make_optimizer("Adam", c.lr_adam), c.epochs_frozen, {}, out);
  unfreeze_base(t);
  t.model->compile(make_optimizer("Adam", c.lr_adam), c.loss, {"accuracy"});
  const Index steps = (d.train->size() + c.batch_size - 1) / c.batch_size;
  const double first = static_cast<double>(steps * c.epochs_unfrozen) / 7.0;
  t.model->optimizer()->set_schedule(std::make_shared<graft::CosineDecayRestarts>(c.lr_adam, first, 2.0, 1.0, 0.0));
  t.model->fit(d.train->x, d.train->y, fit_options(c, d, c.epochs_unfrozen, 2));
  out.info["first_decay_steps"] = first;
  auto& opt = *t.model->optimizer();  // the last step's rate: ~0 at the end of the third cycle
  if (opt.schedule()) out.info["lr_last_step"] = (*opt.schedule())(opt.iterations() - 1);
  finish(t, d, out);
  return out;
}

/// graft::fine_tune with its (fastai's) defaults: the top group one-cycle for epochs_frozen, then
/// every group for epochs_unfrozen, discriminative rates over [base_lr / 200, base_lr / 2] (Adam).
inline Outcome fine_tune(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  unfreeze_base(t);
  t.model->compile(make_optimizer("Adam", c.lr_adam), c.loss, {"accuracy"});
  graft::FineTuneOptions<float> o;
  o.freeze_epochs = c.epochs_frozen;
  o.epochs = c.epochs_unfrozen;
  o.n_groups = c.n_groups;
  o.fit = fit_options(c, d, 0, 0);
  graft::fine_tune(*t.model, d.train->x, d.train->y, o);
  out.info["base_lr"] = o.base_lr;
  finish(t, d, out);
  return out;
}

/// L2-SP (Li et al. 2018): the reused weights are pulled towards their pretrained values, the
/// head towards zero; the head phase and then the whole model, both on Adam at lr_adam.
inline Outcome l2sp(const TaskConfig& c, const Source& s, SeedData& d) {
  Outcome out;
  Transfer t = s.build(d.seed);
  graft::set_l2sp(*t.model, {t.head->name()}, c.l2sp_alpha, c.l2sp_beta);
  train_head(c, s, d, t, make_optimizer("Adam", c.lr_adam), c.epochs_frozen, {}, out);
  unfreeze_base(t);
  t.model->compile(make_optimizer("Adam", c.lr_adam), c.loss, {"accuracy"});
  t.model->fit(d.train->x, d.train->y, fit_options(c, d, c.epochs_unfrozen, 2));
  finish(t, d, out);
  return out;
}

}  // namespace recipes
