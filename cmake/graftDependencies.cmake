# Used by graftConfig.cmake: find what graft::graft links to, then recreate graft::hdf5 and graft::zip.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.3 NO_MODULE)
find_dependency(nlohmann_json 3.2)
find_dependency(ZLIB)
find_dependency(HDF5 COMPONENTS CXX)
include("${CMAKE_CURRENT_LIST_DIR}/graftHdf5.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/graftZip.cmake")
