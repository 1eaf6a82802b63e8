# graft::zip — libzip (Debian libzip-dev), for .keras archives. Found by header and library rather
# than libzip's own CMake package: Debian 12's libzip-config.cmake also imports the zipcmp, zipmerge
# and ziptool programs, which libzip-dev does not install, and then fails to configure.
if(NOT TARGET graft::zip)
  find_path(GRAFT_LIBZIP_INCLUDE_DIR zip.h)
  find_library(GRAFT_LIBZIP_LIBRARY NAMES zip)
  if(NOT GRAFT_LIBZIP_INCLUDE_DIR OR NOT GRAFT_LIBZIP_LIBRARY)
    message(FATAL_ERROR "graft needs libzip (Debian: apt-get install libzip-dev)")
  endif()
  add_library(graft::zip INTERFACE IMPORTED)
  set_target_properties(graft::zip PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${GRAFT_LIBZIP_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${GRAFT_LIBZIP_LIBRARY}")
endif()
