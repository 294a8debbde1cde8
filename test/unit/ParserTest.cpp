//===- ParserTest.cpp - .dtl text -> AST, and syntax errors ---------------===//

#include "frontend/Parser.h"

#include <gtest/gtest.h>

#include <random>

using namespace dtl;
using namespace dtl::ast;

namespace {

struct Parsed {
  std::unique_ptr<Program> program;
  std::vector<std::pair<Pos, std::string>> errors;
};

Parsed parse(const std::string &source) {
  Parsed out;
  out.program = parseProgram(
      source, [&](Pos pos, const std::string &message) { out.errors.push_back({pos, message}); });
  return out;
}

TEST(Parser, DeclarationsWithPositions) {
  Parsed p = parse("mesh grid = [dp: 2, tp: 4];\n"
                   "model m(B = 8, D) {\n"
                   "  param w: f32[D, 16] shard [_, (dp, tp)] init normal(0.0, 0.02);\n"
                   "  param b: f32[16] init zeros;\n"
                   "  input x: f32[B, D] shard [dp, _];\n"
                   "  return sum(x @ w + b);\n"
                   "}\n");
  ASSERT_TRUE(p.program) << (p.errors.empty() ? "" : p.errors[0].second);
  ASSERT_EQ(p.program->meshes.size(), 1u);
  const Mesh &mesh = p.program->meshes[0];
  EXPECT_EQ(mesh.axes[1].name, "tp");
  EXPECT_EQ(mesh.axes[1].size, 4);
  EXPECT_EQ(mesh.axes[1].pos.line, 1u);
  EXPECT_EQ(mesh.axes[1].pos.col, 21u);

  const Model &model = p.program->models.at(0);
  EXPECT_EQ(model.sizes[0].defaultValue, 8);
  EXPECT_FALSE(model.sizes[1].defaultValue.has_value());
  const Stmt &w = model.body[0];
  EXPECT_EQ(w.kind, Stmt::Kind::Param);
  EXPECT_EQ(w.type.dims[0].expr->kind, Expr::Kind::Name);
  EXPECT_EQ(w.type.dims[0].expr->name, "D");
  EXPECT_EQ(w.type.dims[1].expr->number, 16);
  ASSERT_TRUE(w.sharding);
  ASSERT_EQ(w.sharding->dims[1].size(), 2u);
  EXPECT_EQ(w.sharding->dims[1][0].name, "dp");
  EXPECT_EQ(w.sharding->dims[1][1].name, "tp");
  EXPECT_EQ(w.init->callee, "normal");
  EXPECT_EQ(w.init->args.size(), 2u);
  EXPECT_EQ(model.body[1].init->callee, "zeros"); // bare initializer name
  EXPECT_EQ(w.pos.line, 3u);
  EXPECT_EQ(w.pos.col, 3u);
}

TEST(Parser, MatmulBindsTighterThanAdd) {
  Parsed p = parse("model m(B = 2) { input x: f32[B, B]; return sum(x + x @ x - -x); }");
  ASSERT_TRUE(p.program);
  const Expr &sum = *p.program->models[0].body[1].expr;
  ASSERT_EQ(sum.kind, Expr::Kind::Call);
  const Expr &minus = *sum.call->args[0].value->expr;
  ASSERT_EQ(minus.kind, Expr::Kind::Binary);
  EXPECT_EQ(minus.op, '-'); // (x + (x @ x)) - (-x)
  const Expr &plus = *minus.operands[0];
  EXPECT_EQ(plus.op, '+');
  EXPECT_EQ(plus.operands[1]->op, '@');
  EXPECT_EQ(minus.operands[1]->kind, Expr::Kind::Neg);
}

TEST(Parser, TrainSection) {
  Parsed p = parse("train m on grid {\n"
                   "  data x, y = idx(\"a.gz\", \"b.gz\");\n"
                   "  eval x, y = synthetic(classes = 3, size = 10);\n"
                   "  optimizer = adamw(lr = 1e-3, betas = (0.9, 0.95));\n"
                   "  steps = 100;\n"
                   "}\n");
  ASSERT_TRUE(p.program);
  const Train &t = p.program->trains.at(0);
  EXPECT_EQ(t.model, "m");
  EXPECT_EQ(t.mesh, "grid");
  ASSERT_EQ(t.data.size(), 2u);
  EXPECT_FALSE(t.data[0].isEval);
  EXPECT_TRUE(t.data[1].isEval);
  EXPECT_EQ(t.data[0].call->args[1].value->string, "b.gz");
  const Call &adamw = *t.settings[0].value.expr->call;
  EXPECT_EQ(adamw.args[1].key, "betas");
  EXPECT_EQ(adamw.args[1].value->kind, Value::Kind::Tuple);
  EXPECT_DOUBLE_EQ(adamw.args[0].value->expr->number, 1e-3);
}

TEST(Parser, RecoversAndReportsEverySyntaxError) {
  Parsed p = parse("model m(B = 4) {\n"
                   "  param w f32[B];\n"
                   "  input x: f32[B];\n"
                   "  h = x * w);\n"
                   "  return sum(h);\n"
                   "}\n");
  EXPECT_FALSE(p.program);
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].first.line, 2u);
  EXPECT_EQ(p.errors[0].first.col, 11u);
  EXPECT_EQ(p.errors[1].first.line, 4u);
}

TEST(Parser, ErrorsAtEndOfInputAndBadTokens) {
  Parsed eof = parse("model m(B = 4) {");
  EXPECT_FALSE(eof.program);
  EXPECT_FALSE(eof.errors.empty());
  Parsed bad = parse("mesh g = [dp: 2] $;");
  EXPECT_FALSE(bad.program);
  EXPECT_FALSE(bad.errors.empty());
}

// Whatever the bytes, the parser returns (a program or errors): no crash,
// no exception out of the ANTLR runtime.
TEST(Parser, SurvivesRandomInput) {
  std::mt19937 rng(1);
  const std::string alphabet = "model mesh param input train shard init return = : ; , ( ) [ ] { } "
                               "@ + - * / _ x y 1 2.5 \"s\" \n\t\\\"";
  for (int i = 0; i < 300; ++i) {
    std::string source;
    int length = rng() % 120;
    for (int j = 0; j < length; ++j)
      source += (rng() % 10 == 0) ? char(rng() % 256) : alphabet[rng() % alphabet.size()];
    Parsed p = parse(source);
    EXPECT_TRUE(p.program || !p.errors.empty()) << source;
  }
}

} // namespace
