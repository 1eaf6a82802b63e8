// graft — one include for users.
//
//   #include <graft/graft.hpp>
//
// Keras models in C++: load .h5 files, cut heads, graft layers, freeze / unfreeze, fine-tune with
// Keras-exact optimizers, save .h5 files Keras loads again.
#pragma once

#include "graft/activations.hpp"
#include "graft/core/errors.hpp"
#include "graft/core/limits.hpp"
#include "graft/core/random.hpp"
#include "graft/core/tensor.hpp"
#include "graft/data/dataset.hpp"
#include "graft/data/h5_source.hpp"
#include "graft/data/idx.hpp"
#include "graft/data/prefetch.hpp"
#include "graft/data/source.hpp"
#include "graft/io/keras_config.hpp"
#include "graft/io/keras_h5.hpp"
#include "graft/layers/builtin.hpp"
#include "graft/layers/registry.hpp"
#include "graft/model/model.hpp"
#include "graft/model/summary.hpp"
#include "graft/train/backup_and_restore.hpp"
#include "graft/train/callbacks.hpp"
#include "graft/train/distributed.hpp"
#include "graft/train/feature_cache.hpp"
#include "graft/train/feature_extraction.hpp"
#include "graft/train/param_scheduler.hpp"
#include "graft/train/schedule_spec.hpp"
#include "graft/train/fine_tune.hpp"
#include "graft/train/fit.hpp"
#include "graft/train/l2sp.hpp"
#include "graft/train/layer_groups.hpp"
#include "graft/train/loop.hpp"
#include "graft/train/lr_finder.hpp"
#include "graft/train/losses.hpp"
#include "graft/train/metrics.hpp"
#include "graft/train/optimizers.hpp"
#include "graft/train/schedules.hpp"
#include "graft/train/training_state.hpp"
