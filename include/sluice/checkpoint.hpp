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

template <class S>
concept checkpoint_store = requires(S& s, std::string_view mapping, shard_id_t shard,
                                    sequence_number_t seq) {
  { s.load(mapping, shard) } -> std::same_as<std::optional<sequence_number_t>>;
  s.save(mapping, shard, seq);
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
    if (auto it = checkpoints_.find(key_view{mapping, shard}); it != checkpoints_.end())
      it->second = seq;
    else
      checkpoints_.emplace(std::pair{std::string(mapping), shard}, seq);
    ++saves_;
  }
  std::size_t saves() const {
    std::lock_guard lock(mutex_);
    return saves_;
  }

 private:
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
};

SLUICE_END_NAMESPACE
