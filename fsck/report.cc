#include "fsck/report.h"

#include <cstdio>
#include <sstream>

namespace sealfs::fsck {

namespace {

constexpr std::array<const char*, kPhaseCount> kPhaseNames = {
    "superblock", "journal", "inodes", "extents", "bitmap", "directories", "links", "orphans"};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // Names on a corrupt image may hold any byte: keep the JSON valid
          // ASCII by escaping everything outside printable ASCII.
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

const char* exit_meaning(int code) {
  switch (code) {
    case kExitClean: return "clean";
    case kExitCorrected: return "errors corrected";
    case kExitUncorrected: return "errors left uncorrected";
    case kExitOperational: return "operational error";
    default: return "usage error";
  }
}

}  // namespace

const char* phase_name(Phase phase) { return kPhaseNames[static_cast<int>(phase)]; }

void Report::add(Phase phase, std::string kind, uint64_t inode, std::string detail,
                 bool repaired_now, std::vector<std::pair<std::string, uint64_t>> values) {
  auto& summary = phases[static_cast<int>(phase)];
  ++summary.problems;
  ++problem_count;
  if (repaired_now) {
    ++summary.repaired;
    ++repaired_count;
  }
  if (problems.size() < kMaxListedProblems) {
    problems.push_back(Problem{phase, std::move(kind), inode, std::move(detail), repaired_now,
                               std::move(values)});
  }
}

void Report::note(Phase phase, std::string kind, std::string detail) {
  if (notes.size() < kMaxListedProblems) {
    notes.push_back(Problem{phase, std::move(kind), 0, std::move(detail), false, {}});
  }
}

std::string render_text(const Report& r, bool verbose, bool quiet) {
  std::ostringstream out;
  if (!quiet) {
    out << "fsck.sealfs " << r.target
        << (r.repair ? (r.preen ? " (preen)" : " (repair)") : " (check only)") << "\n";
  }
  // Refused before the first phase (a mounted region, no superblock...):
  // eight "not run" lines and "0/0 inodes used" would bury the reason and
  // read like an empty filesystem.
  bool any_ran = false;
  for (const PhaseSummary& s : r.phases) any_ran |= s.ran;
  for (int p = 0; any_ran && p < kPhaseCount; ++p) {
    const PhaseSummary& s = r.phases[p];
    bool noted = false;
    for (const Problem& n : r.notes) noted |= static_cast<int>(n.phase) == p;
    if (quiet && s.problems == 0 && !noted) continue;
    out << "Phase " << (p + 1) << ": " << kPhaseNames[p] << ": ";
    if (!s.ran) {
      out << "not run\n";
    } else if (s.problems == 0) {
      out << "ok\n";
    } else {
      out << s.problems << " problem" << (s.problems == 1 ? "" : "s");
      if (r.repair) out << ", " << s.repaired << " repaired";
      out << "\n";
    }
    for (const Problem& pr : r.problems) {
      if (static_cast<int>(pr.phase) != p) continue;
      out << "  " << (pr.repaired ? "FIXED " : "") << pr.kind;
      if (pr.inode != 0) out << " (inode " << pr.inode << ")";
      out << ": " << pr.detail << "\n";
    }
    for (const Problem& n : r.notes) {
      if (static_cast<int>(n.phase) == p) out << "  note " << n.kind << ": " << n.detail << "\n";
    }
  }
  if (r.problem_count > r.problems.size()) {
    out << "(" << (r.problem_count - r.problems.size()) << " more problems not listed)\n";
  }
  if (!r.operational_error.empty()) out << "error: " << r.operational_error << "\n";
  if (r.remaining_after_repair > 0) {
    out << r.remaining_after_repair << " problems remain after repair\n";
  }
  const Counts& c = r.counts;
  // The counts come from the inode phase: without it they are all 0.
  if (!quiet && r.phases[2].ran) {
    out << c.inodes_used << "/" << c.inodes_total << " inodes used (" << c.regular_files
        << " files, " << c.directories << " directories, " << c.symlinks << " symlinks, "
        << c.other_inodes << " other), " << c.blocks_referenced << "/" << c.data_blocks
        << " data blocks referenced";
    if (verbose) {
      out << ", " << c.blocks_marked << " marked in the bitmap, " << c.orphans << " orphans, "
          << c.journal_transactions_replayed << " journal transactions replayed";
      if (c.journal_transactions_pending > 0) {
        out << " (" << c.journal_transactions_pending << " waiting for replay)";
      }
    }
    out << "\n";
  }
  if (r.problem_count == 0 && r.operational_error.empty()) {
    out << "filesystem is clean\n";
  } else if (r.preen_unsafe > 0) {
    out << "UNEXPECTED INCONSISTENCY: " << r.preen_unsafe << " of " << r.problem_count
        << " problems need a decision that preen (-p) does not make unattended; nothing was "
           "changed: run fsck.sealfs -y "
        << r.target << " manually\n";
  } else if (!r.repair && r.operational_error.empty()) {
    out << r.problem_count << " problems found; run fsck.sealfs -y to repair\n";
  }
  out << "exit " << r.exit_code << " (" << exit_meaning(r.exit_code) << ")\n";
  return out.str();
}

std::string render_json(const Report& r) {
  std::ostringstream out;
  out << "{\"target\":" << json_string(r.target) << ",\"mode\":\""
      << (r.preen ? "preen" : r.repair ? "repair" : "check") << "\",\"phases\":[";
  for (int p = 0; p < kPhaseCount; ++p) {
    const PhaseSummary& s = r.phases[p];
    if (p > 0) out << ",";
    out << "{\"phase\":\"" << kPhaseNames[p] << "\",\"ran\":" << (s.ran ? "true" : "false")
        << ",\"problems\":" << s.problems << ",\"repaired\":" << s.repaired << "}";
  }
  out << "],\"problems\":[";
  for (size_t i = 0; i < r.problems.size(); ++i) {
    const Problem& pr = r.problems[i];
    if (i > 0) out << ",";
    out << "{\"phase\":\"" << phase_name(pr.phase) << "\",\"kind\":" << json_string(pr.kind)
        << ",\"inode\":";
    if (pr.inode == 0) {
      out << "null";
    } else {
      out << pr.inode;
    }
    out << ",\"detail\":" << json_string(pr.detail)
        << ",\"repaired\":" << (pr.repaired ? "true" : "false");
    if (!pr.values.empty()) {
      out << ",\"values\":{";
      for (size_t v = 0; v < pr.values.size(); ++v) {
        out << (v > 0 ? "," : "") << json_string(pr.values[v].first) << ":" << pr.values[v].second;
      }
      out << "}";
    }
    out << "}";
  }
  out << "],\"notes\":[";
  for (size_t i = 0; i < r.notes.size(); ++i) {
    const Problem& n = r.notes[i];
    if (i > 0) out << ",";
    out << "{\"phase\":\"" << phase_name(n.phase) << "\",\"kind\":" << json_string(n.kind)
        << ",\"detail\":" << json_string(n.detail) << "}";
  }
  const Counts& c = r.counts;
  out << "],\"problems_unlisted\":" << (r.problem_count - r.problems.size())
      << ",\"counts\":{\"problems\":" << r.problem_count << ",\"repaired\":" << r.repaired_count
      << ",\"remaining_after_repair\":" << r.remaining_after_repair
      << ",\"preen_unsafe\":" << r.preen_unsafe
      << ",\"inodes_total\":" << c.inodes_total << ",\"inodes_used\":" << c.inodes_used
      << ",\"regular_files\":" << c.regular_files << ",\"directories\":" << c.directories
      << ",\"symlinks\":" << c.symlinks << ",\"other_inodes\":" << c.other_inodes
      << ",\"data_blocks\":" << c.data_blocks << ",\"blocks_referenced\":" << c.blocks_referenced
      << ",\"blocks_marked\":" << c.blocks_marked << ",\"orphans\":" << c.orphans
      << ",\"journal_transactions_replayed\":" << c.journal_transactions_replayed
      << ",\"journal_transactions_pending\":" << c.journal_transactions_pending << "}";
  out << ",\"error\":";
  if (r.operational_error.empty()) {
    out << "null";
  } else {
    out << json_string(r.operational_error);
  }
  out << ",\"exit_code\":" << r.exit_code << "}\n";
  return out.str();
}

}  // namespace sealfs::fsck
