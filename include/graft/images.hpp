// graft — images, opt-in: decoding (PNG, JPEG, GIF, BMP), writing (PNG, JPEG), Keras' resize and
// image_dataset_from_directory. Not part of graft/graft.hpp, so programs that read no images need
// neither libpng, libjpeg nor giflib. Link with the CMake target graft::images (it brings libpng,
// libjpeg-turbo and giflib; Debian: libpng-dev libjpeg62-turbo-dev libgif-dev).
//
//   #include <graft/graft.hpp>
//   #include <graft/images.hpp>
//   auto train = graft::data::image_dataset_from_directory<float>("photos", opts);
#pragma once

#include "graft/data/image.hpp"
#include "graft/data/image_decode.hpp"
#include "graft/data/image_encode.hpp"  // write_png, write_jpeg, save_img
#include "graft/data/image_folder.hpp"
#include "graft/data/image_index.hpp"
#include "graft/data/image_resize.hpp"
#include "graft/data/numpy_random.hpp"
#include "graft/train/fine_tune_images.hpp"
