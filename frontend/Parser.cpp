//===- Parser.cpp - .dtl source -> AST through the ANTLR parser -----------===//
//
// The only file that touches ANTLR: its runtime throws, so this file is
// built with exceptions and nothing it throws escapes parseProgram.
//
//===----------------------------------------------------------------------===//

#include "frontend/Parser.h"

#include "DTLLexer.h"
#include "DTLParser.h"
#include "antlr4-runtime.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

using namespace dtl;
using namespace dtl::ast;
using dtlgrammar::DTLParser;

namespace {

class ErrorCollector : public antlr4::BaseErrorListener {
public:
  ErrorCollector(const SyntaxErrorFn &onError, const std::string *file)
      : onError(onError), file(file) {}
  void syntaxError(antlr4::Recognizer *, antlr4::Token *, size_t line, size_t col,
                   const std::string &msg, std::exception_ptr) override {
    onError(Pos{(unsigned)line, (unsigned)col + 1, file}, "syntax error: " + msg);
    ++count;
  }
  unsigned count = 0;

private:
  const SyntaxErrorFn &onError;
  const std::string *file;
};

/// Builds the AST from a parse tree that had no syntax errors.
struct Builder {
  const SyntaxErrorFn &onError;
  const std::string *file;
  bool failed = false;

  Pos posOf(antlr4::Token *t) {
    return Pos{(unsigned)t->getLine(), (unsigned)t->getCharPositionInLine() + 1, file};
  }
  Pos posOf(antlr4::ParserRuleContext *ctx) { return posOf(ctx->getStart()); }

  /// An INT token's value; one that does not fit in 64 bits is an error.
  int64_t integer(antlr4::Token *token) {
    errno = 0;
    long long n = std::strtoll(token->getText().c_str(), nullptr, 10);
    if (errno == ERANGE) {
      onError(posOf(token), "integer '" + token->getText() + "' is too large");
      failed = true;
      return 1;
    }
    return n;
  }

  /// A number literal's value; one beyond double's range is an error.
  double number(antlr4::ParserRuleContext *ctx) {
    double v = std::strtod(ctx->getText().c_str(), nullptr);
    if (!std::isfinite(v)) {
      onError(posOf(ctx), "number '" + ctx->getText() + "' is out of range");
      failed = true;
      return 0;
    }
    return v;
  }
  std::unique_ptr<Expr> expr(DTLParser::ExprContext *ctx) {
    auto e = std::make_unique<Expr>();
    e->pos = posOf(ctx);
    if (auto *c = dynamic_cast<DTLParser::NegExprContext *>(ctx)) {
      e->kind = Expr::Kind::Neg;
      e->operands.push_back(expr(c->expr()));
    } else if (auto *c = dynamic_cast<DTLParser::MulExprContext *>(ctx)) {
      binary(*e, c->op, c->expr(0), c->expr(1));
    } else if (auto *c = dynamic_cast<DTLParser::AddExprContext *>(ctx)) {
      binary(*e, c->op, c->expr(0), c->expr(1));
    } else if (auto *c = dynamic_cast<DTLParser::CallExprContext *>(ctx)) {
      e->kind = Expr::Kind::Call;
      e->call = call(c->call());
    } else if (auto *c = dynamic_cast<DTLParser::NameExprContext *>(ctx)) {
      e->kind = Expr::Kind::Name;
      e->name = c->ID()->getText();
    } else if (auto *c = dynamic_cast<DTLParser::NumberExprContext *>(ctx)) {
      e->kind = Expr::Kind::Number;
      e->number = number(c->number());
    } else {
      return expr(dynamic_cast<DTLParser::ParenExprContext *>(ctx)->expr());
    }
    return e;
  }

  void binary(Expr &e, antlr4::Token *op, DTLParser::ExprContext *lhs,
              DTLParser::ExprContext *rhs) {
    e.kind = Expr::Kind::Binary;
    e.op = op->getText()[0];
    e.pos = posOf(op); // diagnostics point at the operator
    e.operands.push_back(expr(lhs));
    e.operands.push_back(expr(rhs));
  }

  std::unique_ptr<Call> call(DTLParser::CallContext *ctx) {
    auto c = std::make_unique<Call>();
    c->callee = ctx->callee->getText();
    c->pos = posOf(ctx);
    for (auto *a : ctx->arg())
      c->args.push_back(Arg{a->key ? a->key->getText() : "",
                            std::make_unique<Value>(value(a->value())), posOf(a)});
    return c;
  }

  Value value(DTLParser::ValueContext *ctx) {
    Value v;
    v.pos = posOf(ctx);
    if (auto *c = dynamic_cast<DTLParser::ExprValueContext *>(ctx)) {
      v.kind = Value::Kind::Expr;
      v.expr = expr(c->expr());
    } else if (auto *c = dynamic_cast<DTLParser::StringValueContext *>(ctx)) {
      v.kind = Value::Kind::String;
      std::string text = c->STRING()->getText();
      for (size_t i = 1; i + 1 < text.size(); ++i) {
        if (text[i] == '\\' && i + 2 < text.size())
          ++i;
        v.string += text[i];
      }
    } else if (auto *c = dynamic_cast<DTLParser::BytesValueContext *>(ctx)) {
      v.kind = Value::Kind::Bytes;
      v.string = c->BYTES()->getText();
    } else if (dynamic_cast<DTLParser::OneFOneBValueContext *>(ctx)) {
      v.kind = Value::Kind::OneFOneB;
    } else {
      v.kind = Value::Kind::Tuple;
      for (auto *item : dynamic_cast<DTLParser::TupleValueContext *>(ctx)->value())
        v.tuple.push_back(value(item));
    }
    return v;
  }

  TensorType tensorType(DTLParser::TensorTypeContext *ctx) {
    TensorType t{ctx->dtype->getText(), {}, posOf(ctx)};
    for (auto *d : ctx->dim())
      t.dims.push_back(Dim{std::shared_ptr<Expr>(expr(d->expr())), posOf(d)});
    return t;
  }

  std::optional<Sharding> sharding(DTLParser::ShardingContext *ctx) {
    if (!ctx)
      return std::nullopt;
    Sharding s{{}, posOf(ctx)};
    for (auto *d : ctx->shardDim()) {
      std::vector<AxisRef> axes;
      if (auto *one = dynamic_cast<DTLParser::OneAxisContext *>(d))
        axes.push_back(AxisRef{one->ID()->getText(), posOf(one)});
      else
        for (auto *id : dynamic_cast<DTLParser::ManyAxesContext *>(d)->ID())
          axes.push_back(AxisRef{id->getText(), posOf(id->getSymbol())});
      s.dims.push_back(std::move(axes));
    }
    return s;
  }

  Stmt stmt(DTLParser::StmtContext *ctx) {
    Stmt s;
    s.pos = posOf(ctx);
    if (auto *c = dynamic_cast<DTLParser::ParamStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Param;
      s.name = c->name->getText();
      s.type = tensorType(c->tensorType());
      s.sharding = sharding(c->sharding());
      if (auto *init = c->initializer()) {
        if (init->call()) {
          s.init = call(init->call());
        } else {
          s.init = std::make_unique<Call>();
          s.init->callee = init->ID()->getText();
          s.init->pos = posOf(init);
        }
      }
      if (c->decay) {
        s.decay = c->decay->getText();
        s.decayPos = posOf(c->decay);
      }
    } else if (auto *c = dynamic_cast<DTLParser::InputStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Input;
      s.name = c->name->getText();
      s.type = tensorType(c->tensorType());
      s.sharding = sharding(c->sharding());
    } else if (auto *c = dynamic_cast<DTLParser::AssignStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Assign;
      s.name = c->name->getText();
      s.expr = expr(c->expr());
      s.sharding = sharding(c->sharding());
    } else if (auto *c = dynamic_cast<DTLParser::UnpackStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Unpack;
      for (antlr4::Token *name : c->names) {
        s.names.push_back(name->getText());
        s.namePos.push_back(posOf(name));
      }
      s.expr = expr(c->expr());
    } else if (auto *c = dynamic_cast<DTLParser::RepeatStmtContext *>(ctx)) {
      s.kind = Stmt::Kind::Repeat;
      s.name = c->name->getText();
      s.count = expr(c->count);
      if (c->recompute) {
        s.recompute = c->level ? c->level->getText() : "all";
        s.recomputePos = posOf(c->level ? c->level : c->recompute);
      }
      if (c->ppAxis) {
        s.pipelineAxis = c->ppAxis->getText();
        s.pipelinePos = posOf(c->ppAxis);
      }
      s.expr = std::make_unique<Expr>();
      s.expr->kind = Expr::Kind::Call;
      s.expr->call = call(c->call());
      s.expr->pos = s.expr->call->pos;
    } else {
      s.kind = Stmt::Kind::Return;
      s.expr = expr(dynamic_cast<DTLParser::ReturnStmtContext *>(ctx)->expr());
    }
    return s;
  }

  void decl(DTLParser::DeclContext *ctx, Program &program) {
    if (auto *i = ctx->importDecl()) {
      std::string text = i->path->getText();
      program.imports.push_back(Import{text.substr(1, text.size() - 2), posOf(i)});
    } else if (auto *b = ctx->blockDecl()) {
      Block block{b->name->getText(), {}, {}, posOf(b)};
      for (antlr4::Token *arg : b->args)
        block.args.push_back(arg->getText());
      for (auto *s : b->stmt())
        block.body.push_back(stmt(s));
      program.blocks.push_back(std::move(block));
    } else if (auto *m = ctx->meshDecl()) {
      Mesh mesh{m->name->getText(), {}, posOf(m)};
      for (auto *a : m->meshAxis())
        mesh.axes.push_back(MeshAxis{a->name->getText(), integer(a->size), posOf(a)});
      program.meshes.push_back(std::move(mesh));
    } else if (auto *m = ctx->modelDecl()) {
      Model model{m->name->getText(), {}, {}, posOf(m)};
      for (auto *p : m->sizeParam()) {
        SizeParam size{p->name->getText(), std::nullopt, posOf(p)};
        if (p->size)
          size.defaultValue = integer(p->size);
        model.sizes.push_back(size);
      }
      for (auto *s : m->stmt())
        model.body.push_back(stmt(s));
      program.models.push_back(std::move(model));
    } else if (auto *t = ctx->trainDecl()) {
      Train train;
      train.model = t->model->getText();
      train.mesh = t->mesh->getText();
      train.modelPos = posOf(t->model);
      train.meshPos = posOf(t->mesh);
      train.pos = posOf(t);
      for (auto *s : t->trainStmt()) {
        if (auto *d = dynamic_cast<DTLParser::DataStmtContext *>(s)) {
          DataSource source;
          source.isEval = d->kind->getText() == "eval";
          for (auto *id : d->ID())
            source.names.push_back(AxisRef{id->getText(), posOf(id->getSymbol())});
          source.call = call(d->call());
          source.pos = posOf(d);
          train.data.push_back(std::move(source));
        } else {
          auto *c = dynamic_cast<DTLParser::SettingStmtContext *>(s);
          train.settings.push_back(Setting{c->key->getText(), value(c->value()), posOf(c)});
        }
      }
      program.trains.push_back(std::move(train));
    }
  }
};

} // namespace

std::optional<int64_t> dtl::parseBytes(llvm::StringRef text) {
  static const std::pair<llvm::StringRef, double> units[] = {
      {"KiB", 0x1p10}, {"MiB", 0x1p20}, {"GiB", 0x1p30}, {"TiB", 0x1p40},
      {"KB", 1e3},     {"MB", 1e6},     {"GB", 1e9},     {"TB", 1e12}};
  for (auto [unit, scale] : units) {
    llvm::StringRef number = text;
    double value;
    if (!number.consume_back(unit) || number.empty() || !std::isdigit(number.front()) ||
        number.getAsDouble(value))
      continue;
    double bytes = value * scale;
    if (!(bytes < 0x1p63))
      return std::nullopt;
    return int64_t(bytes);
  }
  return std::nullopt;
}

std::unique_ptr<Program> dtl::parseProgram(const std::string &source, const SyntaxErrorFn &onError,
                                           const std::string *file) {
  if (!checkSource(source, onError, file))
    return nullptr;
  try {
    antlr4::ANTLRInputStream input(source);
    dtlgrammar::DTLLexer lexer(&input);
    antlr4::CommonTokenStream tokens(&lexer);
    DTLParser parser(&tokens);
    ErrorCollector errors(onError, file);
    lexer.removeErrorListeners();
    lexer.addErrorListener(&errors);
    parser.removeErrorListeners();
    parser.addErrorListener(&errors);
    DTLParser::ProgramContext *tree = parser.program();
    if (errors.count > 0)
      return nullptr;
    auto program = std::make_unique<Program>();
    Builder builder{onError, file};
    for (auto *d : tree->decl())
      builder.decl(d, *program);
    return builder.failed ? nullptr : std::move(program);
  } catch (const std::exception &e) {
    onError(Pos{1, 1, file}, std::string("internal parser error: ") + e.what());
    return nullptr;
  }
}
