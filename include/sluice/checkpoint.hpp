// sluice/checkpoint.hpp: where a mapping keeps its per-shard checkpoints (S-3.3, S-3.4). A
// checkpoint S means every record of the shard with sequence <= S is finished; a new mapping
// with the same name over the same store resumes at S + 1.
#pragma once

#include <concepts>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE

/// An open tumbling window (S-7) as a store keeps it with its shard's checkpoint: its bounds and
/// the state the last successful invocation returned. A restarted mapping resumes it.
struct window_checkpoint {
  time_point start{};
  time_point end{};
  std::string state;
  /// The state went over the cap: the window's early final invocation is due (docs/windows.md).
  bool terminated_early = false;
  friend bool operator==(const window_checkpoint&, const window_checkpoint&) = default;
};

template <class S>
concept checkpoint_store = requires(S& s, std::string_view mapping, shard_id_t shard,
                                    sequence_number_t seq) {
  { s.load(mapping, shard) } -> std::same_as<std::optional<sequence_number_t>>;
  s.save(mapping, shard, seq);
};

/// A store that also keeps a shard's open window with its checkpoint, in one atomic save
/// (save(mapping, shard, seq, window): a null window means "no open window": erase it).
/// Mappings with sluice::tumbling_window need one.
template <class S>
concept window_checkpoint_store = checkpoint_store<S> &&
    requires(S& s, std::string_view mapping, shard_id_t shard, sequence_number_t seq,
             const window_checkpoint* window) {
  { s.load_window(mapping, shard) } -> std::same_as<std::optional<window_checkpoint>>;
  s.save(mapping, shard, seq, window);
};

/// Checkpoints in memory; survives a mapping, not the process. Thread-safe.
class memory_checkpoint_store {
 public:
  std::optional<sequence_number_t> load(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    auto it = checkpoints_.find(key_view{mapping, shard});
    if (it == checkpoints_.end()) return std::nullopt;
    return it->second;
  }
  /// Allocates only the first time a (mapping, shard) is saved.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    std::lock_guard lock(mutex_);
    save_locked(mapping, shard, seq);
  }
  std::size_t saves() const {
    std::lock_guard lock(mutex_);
    return saves_;
  }

  /// The checkpoint and the shard's open window (or none), together.
  void save(std::string_view mapping, shard_id_t shard, sequence_number_t seq,
            const window_checkpoint* window) {
    std::lock_guard lock(mutex_);
    save_locked(mapping, shard, seq);
    auto it = windows_.find(key_view{mapping, shard});
    if (window == nullptr) {
      if (it != windows_.end()) windows_.erase(it);
    } else if (it != windows_.end()) {
      it->second = *window;
    } else {
      windows_.emplace(std::pair{std::string(mapping), shard}, *window);
    }
  }
  std::optional<window_checkpoint> load_window(std::string_view mapping, shard_id_t shard) const {
    std::lock_guard lock(mutex_);
    auto it = windows_.find(key_view{mapping, shard});
    if (it == windows_.end()) return std::nullopt;
    return it->second;
  }

 private:
  void save_locked(std::string_view mapping, shard_id_t shard, sequence_number_t seq) {
    if (auto it = checkpoints_.find(key_view{mapping, shard}); it != checkpoints_.end())
      it->second = seq;
    else
      checkpoints_.emplace(std::pair{std::string(mapping), shard}, seq);
    ++saves_;
  }
  using key_view = std::pair<std::string_view, shard_id_t>;
  /// Orders stored keys and looked-up views alike (a lookup builds no std::string).
  struct by_mapping_then_shard {
    using is_transparent = void;
    static key_view view(const std::pair<std::string, shard_id_t>& k) noexcept {
      return {k.first, k.second};
    }
    static key_view view(const key_view& k) noexcept { return k; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return view(a) < view(b);
    }
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, shard_id_t>, sequence_number_t, by_mapping_then_shard>
      checkpoints_;
  std::size_t saves_ = 0;
  std::map<std::pair<std::string, shard_id_t>, window_checkpoint, by_mapping_then_shard> windows_;
};

SLUICE_END_NAMESPACE
