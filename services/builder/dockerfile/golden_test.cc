// Golden tests: every directory tests/testdata/dockerfile/<case>/ holds a
// Dockerfile and either expected.json (the parse result, DockerfileToJson) or
// error.txt (the exact error message). A case that parses also has
// resolved.json: every stage resolved (expand.h) with GoldenOptions() and base
// images whose config only sets PATH: the expanded FROM, the final ENV/ARGs/WORKDIR and each
// instruction that expansion changed (or the resolution error).
// PIER_UPDATE_GOLDEN=1 rewrites them from the current code instead of comparing.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/strip.h"
#include "lib/common/fs.h"
#include "lib/common/testing.h"
#include "services/builder/dockerfile/expand.h"
#include "services/builder/dockerfile/instructions.h"
#include "services/builder/dockerfile/json.h"

namespace pier::builder::dockerfile {
namespace {

std::string GoldenDir() { return std::string(PIER_TESTDATA_DIR) + "/dockerfile"; }

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> ListCases() {
  std::vector<std::string> cases;
  DIR* dir = ::opendir(GoldenDir().c_str());
  if (dir == nullptr) return cases;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name[0] == '.') continue;
    if (Exists(GoldenDir() + "/" + name + "/Dockerfile")) cases.push_back(name);
  }
  ::closedir(dir);
  std::sort(cases.begin(), cases.end());
  return cases;
}

bool UpdateGoldens() {
  const char* v = std::getenv("PIER_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

BuildOptions GoldenOptions() {
  BuildOptions options;
  options.build_platform = "linux/amd64";
  options.target_platform = "linux/arm64/v8";
  return options;
}

// Renders ResolveAll() of `df` for resolved.json.
std::string RenderResolved(const Dockerfile& df) {
  using Json = nlohmann::ordered_json;
  auto image_base = [](const std::string&, const std::string&) -> absl::StatusOr<StageBase> {
    StageBase base;
    base.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    return base;
  };
  absl::StatusOr<std::vector<ResolvedStage>> stages = ResolveAll(df, GoldenOptions(), image_base);
  Json j;
  j["build_platform"] = GoldenOptions().build_platform;
  j["target_platform"] = GoldenOptions().target_platform;
  if (!stages.ok()) {
    j["error"] = std::string(stages.status().message());
  } else {
    Json list = Json::array();
    for (const ResolvedStage& rs : *stages) {
      Json st;
      st["index"] = rs.index;
      if (!rs.name.empty()) st["name"] = rs.name;
      st["image"] = rs.from.image;
      if (!rs.from.platform.empty()) st["platform"] = rs.from.platform;
      if (rs.from.base_stage) st["base_stage"] = *rs.from.base_stage;
      st["workdir"] = rs.workdir;
      st["env"] = rs.env.ToEnvList();
      st["args"] = rs.args.ToEnvList();
      Json expanded = Json::array();
      const Stage& stage = df.stages[rs.index];
      for (size_t i = 0; i < rs.steps.size(); ++i) {
        Json after = InstructionToJson(rs.steps[i].instruction);
        if (after != InstructionToJson(stage.instructions[i])) {
          after.erase("original");
          expanded.push_back(after);
        }
      }
      st["expanded"] = expanded;
      list.push_back(st);
    }
    j["stages"] = list;
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);  // HasCases reports an empty corpus

TEST_P(GoldenTest, MatchesGolden) {
  const std::string dir = GoldenDir() + "/" + GetParam();
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFile(dir + "/Dockerfile"));
  absl::StatusOr<Dockerfile> df = Parse(text);
  const std::string json_path = dir + "/expected.json";
  const std::string error_path = dir + "/error.txt";

  const std::string resolved_path = dir + "/resolved.json";

  if (UpdateGoldens()) {
    if (df.ok()) {
      ASSERT_OK(WriteFileAtomic(json_path, DockerfileToJsonString(*df)));
      ASSERT_OK(WriteFileAtomic(resolved_path, RenderResolved(*df)));
      ::unlink(error_path.c_str());
    } else {
      ASSERT_OK(WriteFileAtomic(error_path, std::string(df.status().message()) + "\n"));
      ::unlink(json_path.c_str());
      ::unlink(resolved_path.c_str());
    }
    return;
  }

  if (Exists(error_path)) {
    ASSERT_OK_AND_ASSIGN(std::string want, ReadFile(error_path));
    ASSERT_FALSE(df.ok()) << "expected error: " << want;
    EXPECT_EQ(df.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(df.status().message()), std::string(absl::StripSuffix(want, "\n")));
    return;
  }
  ASSERT_TRUE(Exists(json_path)) << "no expected.json or error.txt in " << dir
                                 << " (run with PIER_UPDATE_GOLDEN=1 to create it)";
  ASSERT_OK(df.status());
  ASSERT_OK_AND_ASSIGN(std::string want, ReadFile(json_path));
  EXPECT_EQ(DockerfileToJsonString(*df), want)
      << "golden mismatch in " << dir << " (PIER_UPDATE_GOLDEN=1 rewrites it)";
  ASSERT_TRUE(Exists(resolved_path)) << "no resolved.json in " << dir;
  ASSERT_OK_AND_ASSIGN(std::string resolved, ReadFile(resolved_path));
  EXPECT_EQ(RenderResolved(*df), resolved)
      << "golden mismatch in " << resolved_path << " (PIER_UPDATE_GOLDEN=1 rewrites it)";
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(ListCases()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param;
                         });

TEST(GoldenCorpusTest, HasCases) { EXPECT_GE(ListCases().size(), 30u) << GoldenDir(); }

}  // namespace
}  // namespace pier::builder::dockerfile
