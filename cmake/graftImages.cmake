# graft::images — what #include <graft/images.hpp> needs (image decoding, Keras' resize and
# image_dataset_from_directory, header-only): graft::graft plus libpng, libjpeg-turbo and giflib
# (Debian: libpng-dev libjpeg62-turbo-dev libgif-dev), through CMake's FindPNG, FindJPEG and
# FindGIF. Programs that read no images link graft::graft alone and need none of the three.
# Without one of the libraries nothing is defined (if(TARGET graft::images) tells) and
# graft_images_FOUND is FALSE, saying which library is missing. A GLOBAL imported target, so that
# a project that add_subdirectory()s graft sees it too; usable from graftConfig.cmake as well.
if(NOT TARGET graft::images)
  find_package(PNG QUIET)
  find_package(JPEG QUIET)
  find_package(GIF QUIET)
  set(_graft_images_missing "")
  if(NOT TARGET PNG::PNG)
    list(APPEND _graft_images_missing "libpng (libpng-dev)")
  endif()
  if(NOT TARGET JPEG::JPEG)
    list(APPEND _graft_images_missing "libjpeg-turbo (libjpeg62-turbo-dev)")
  endif()
  if(NOT TARGET GIF::GIF)
    list(APPEND _graft_images_missing "giflib (libgif-dev)")
  endif()
  if(_graft_images_missing)
    string(REPLACE ";" ", " _graft_images_missing "${_graft_images_missing}")
    message(STATUS "graft: graft::images (graft/images.hpp) not available: missing ${_graft_images_missing}")
  else()
    add_library(graft::images INTERFACE IMPORTED GLOBAL)
    target_link_libraries(graft::images INTERFACE graft::graft PNG::PNG JPEG::JPEG GIF::GIF)
  endif()
  unset(_graft_images_missing)
endif()
if(TARGET graft::images)
  set(graft_images_FOUND TRUE)
else()
  set(graft_images_FOUND FALSE)
endif()
