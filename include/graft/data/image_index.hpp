// graft — listing an image folder the way Keras 3's dataset_utils.index_directory does, so that
// image_dataset_from_directory gives the same files, labels, order and validation split as Keras:
//   - labels "inferred": class subfolders = the directory's entries that are directories
//     (symlinks to directories count), not starting with ".", in sorted order (or class_names'
//     order, which must be a subset of them); each class folder is walked recursively;
//   - without inferred labels the whole directory is walked;
//   - a walk is os.walk: every (root, files) pair, sorted by the root path string, then the files
//     of each root sorted by name; symlinked subdirectories are entered only with follow_links
//     (graft also stops at a directory it has already entered, where Python would loop);
//   - files whose lower-cased name ends in .bmp .gif .jpeg .jpg .png (Keras' ALLOWLIST_FORMATS);
//   - paths are os.path.join(directory, class, path-under-the-class-folder);
//   - shuffle: numpy.random.RandomState(seed).shuffle of the path list and of the label array;
//   - split: num_val = int(validation_split * n); training = the first n - num_val, validation =
//     the last num_val (get_training_or_validation_split).
// Sorting compares bytes, which for UTF-8 names is Python's code-point order.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/data/numpy_random.hpp"

namespace graft {
namespace data {

/// A file left out of a dataset, and why.
struct SkippedImage {
  std::string path;
  std::string reason;
};

namespace detail {

/// os.path.join(a, b) for relative b.
inline std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a.back() == '/' ? a : a + "/";
  return a.back() == '/' ? a + b : a + "/" + b;
}

/// Keras' ALLOWLIST_FORMATS test: fname.lower().endswith((".bmp", ".gif", ".jpeg", ".jpg", ".png")).
inline bool has_image_extension(const std::string& name) {
  static const char* exts[] = {".bmp", ".gif", ".jpeg", ".jpg", ".png"};
  for (const char* e : exts) {
    const size_t k = std::char_traits<char>::length(e);
    if (name.size() < k) continue;
    bool ok = true;
    for (size_t i = 0; i < k && ok; ++i) {
      const unsigned char c = static_cast<unsigned char>(name[name.size() - k + i]);
      ok = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c) == e[i];
    }
    if (ok) return true;
  }
  return false;
}

struct WalkRoot {
  std::string root;
  std::vector<std::string> files;
};

/// os.walk(top, followlinks=follow), every root with its non-directory entries. Directories that
/// cannot be listed go to `unreadable` (os.walk ignores them silently).
inline void os_walk(const std::string& top, bool follow, std::vector<WalkRoot>& out, std::set<std::pair<std::uint64_t, std::uint64_t>>& seen,
                    std::vector<SkippedImage>& unreadable) {
  namespace fs = std::filesystem;
  struct ::stat st;
  if (::stat(top.c_str(), &st) == 0 && !seen.insert({static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)}).second)
    return;  // a directory entered before (a symlink cycle)
  std::error_code ec;
  fs::directory_iterator it(top, ec), end;
  if (ec) {
    unreadable.push_back({top, "cannot list the directory (" + ec.message() + ")"});
    return;
  }
  WalkRoot r;
  r.root = top;
  std::vector<std::string> dirs;
  for (; it != end; it.increment(ec)) {
    if (ec) {
      unreadable.push_back({top, "listing stopped (" + ec.message() + ")"});
      break;
    }
    const std::string name = it->path().filename().string();
    std::error_code e2;
    if (it->is_directory(e2))
      dirs.push_back(name);
    else
      r.files.push_back(name);
  }
  out.push_back(std::move(r));
  for (const std::string& d : dirs) {
    const std::string p = path_join(top, d);
    std::error_code e3;
    if (!follow && fs::is_symlink(fs::symlink_status(p, e3))) continue;
    os_walk(p, follow, out, seen, unreadable);
  }
}

/// The result of index_directory (before shuffling).
struct DirectoryIndex {
  std::vector<std::string> paths;
  std::vector<int> labels;  // class index per path (inferred labels only)
  std::vector<std::string> class_names;
  std::vector<SkippedImage> unreadable;  // folders that could not be listed
  bool no_class_folders = false;
};

/// index_directory(directory, labels, ALLOWLIST_FORMATS, class_names, shuffle=False): with
/// `inferred` the class folders, otherwise the whole tree.
inline DirectoryIndex index_directory(const std::string& directory, bool inferred, const std::vector<std::string>& class_names,
                                      bool follow_links) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(directory, ec);
  if (!fs::exists(st)) throw io_error(graft::detail::cat(directory, ": no such directory"));
  if (!fs::is_directory(st)) throw io_error(graft::detail::cat(directory, ": not a directory"));
  DirectoryIndex ix;
  std::vector<std::string> subdirs;
  if (inferred) {
    fs::directory_iterator it(directory, ec), end;
    if (ec) throw io_error(graft::detail::cat(directory, ": cannot list the directory (", ec.message(), ")"));
    for (; it != end; it.increment(ec)) {
      if (ec) throw io_error(graft::detail::cat(directory, ": cannot list the directory (", ec.message(), ")"));
      const std::string name = it->path().filename().string();
      std::error_code e2;
      if (it->is_directory(e2) && !name.empty() && name[0] != '.') subdirs.push_back(name);
    }
    std::sort(subdirs.begin(), subdirs.end());
    if (!class_names.empty()) {
      std::set<std::string> have(subdirs.begin(), subdirs.end()), given;
      for (const std::string& c : class_names) {
        if (!have.count(c)) {
          std::string list;
          for (const std::string& s : subdirs) list += (list.empty() ? "'" : ", '") + s + "'";
          throw value_error(graft::detail::cat("image_dataset_from_directory: class_names do not match the subdirectories of ", directory,
                                               ": '", c, "' is not one of them (expected a subset of [", list, "])"));
        }
        if (!given.insert(c).second)
          throw value_error(graft::detail::cat("image_dataset_from_directory: class_names lists '", c, "' twice"));
      }
      subdirs = class_names;  // the given order
    }
    ix.no_class_folders = subdirs.empty();
  } else {
    subdirs = {""};
  }
  ix.class_names = inferred ? subdirs : std::vector<std::string>{};
  for (size_t k = 0; k < subdirs.size(); ++k) {
    const std::string top = path_join(directory, subdirs[k]);
    std::vector<WalkRoot> roots;
    std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
    os_walk(top, follow_links, roots, seen, ix.unreadable);
    std::stable_sort(roots.begin(), roots.end(), [](const WalkRoot& a, const WalkRoot& b) { return a.root < b.root; });
    for (WalkRoot& r : roots) {
      std::sort(r.files.begin(), r.files.end());
      // the root below `top`: os.path.relpath(join(root, fname), top)
      std::string rel = r.root.size() > top.size() ? r.root.substr(top.size()) : std::string();
      while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
      for (const std::string& f : r.files) {
        if (!has_image_extension(f)) continue;
        ix.paths.push_back(path_join(top, path_join(rel, f)));
        if (inferred) ix.labels.push_back(static_cast<int>(k));
      }
    }
  }
  return ix;
}

/// Rows [begin, end) of the shuffled list that the subset ("" = all, "training", "validation")
/// keeps: get_training_or_validation_split.
inline std::pair<size_t, size_t> split_range(size_t n, double validation_split, const std::string& subset) {
  if (!(validation_split > 0) || subset.empty()) return {0, n};
  const size_t num_val = static_cast<size_t>(validation_split * static_cast<double>(n));
  if (subset == "training") return {0, n - num_val};
  return {n - num_val, n};
}

}  // namespace detail
}  // namespace data
}  // namespace graft
