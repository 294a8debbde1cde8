//===- AST.cpp - printing the AST (dtlc --emit=ast) -----------------------===//

#include "frontend/AST.h"

#include "llvm/Support/Format.h"

using namespace dtl::ast;

namespace {

void dumpExpr(const Expr &e, llvm::raw_ostream &os);

void dumpValue(const Value &v, llvm::raw_ostream &os) {
  if (v.kind == Value::Kind::Expr)
    dumpExpr(*v.expr, os);
  else if (v.kind == Value::Kind::String)
    os << '"' << v.string << '"';
  else if (v.kind == Value::Kind::Bytes)
    os << v.string;
  else if (v.kind == Value::Kind::OneFOneB)
    os << "1f1b";
  else {
    os << '(';
    for (size_t i = 0; i < v.tuple.size(); ++i) {
      os << (i ? ", " : "");
      dumpValue(v.tuple[i], os);
    }
    os << ')';
  }
}

void dumpCall(const Call &c, llvm::raw_ostream &os) {
  os << c.callee << '(';
  for (size_t i = 0; i < c.args.size(); ++i) {
    os << (i ? ", " : "") << (c.args[i].key.empty() ? "" : c.args[i].key + " = ");
    dumpValue(*c.args[i].value, os);
  }
  os << ')';
}

void dumpExpr(const Expr &e, llvm::raw_ostream &os) {
  switch (e.kind) {
  case Expr::Kind::Number:
    os << llvm::format("%g", e.number);
    break;
  case Expr::Kind::Name:
    os << e.name;
    break;
  case Expr::Kind::Neg:
    os << "(-";
    dumpExpr(*e.operands[0], os);
    os << ')';
    break;
  case Expr::Kind::Binary:
    os << '(';
    dumpExpr(*e.operands[0], os);
    os << ' ' << e.op << ' ';
    dumpExpr(*e.operands[1], os);
    os << ')';
    break;
  case Expr::Kind::Call:
    dumpCall(*e.call, os);
    break;
  }
}

void dumpSharding(const std::optional<Sharding> &s, llvm::raw_ostream &os) {
  if (!s)
    return;
  os << " shard [";
  for (size_t i = 0; i < s->dims.size(); ++i) {
    const std::vector<AxisRef> &axes = s->dims[i];
    os << (i ? ", " : "") << (axes.size() > 1 ? "(" : "");
    for (size_t j = 0; j < axes.size(); ++j)
      os << (j ? ", " : "") << axes[j].name;
    os << (axes.size() > 1 ? ")" : "");
  }
  os << ']';
}

void dumpType(const TensorType &t, llvm::raw_ostream &os) {
  os << t.dtype << '[';
  for (size_t i = 0; i < t.dims.size(); ++i)
    os << (i ? ", " : ""), dumpExpr(*t.dims[i].expr, os);
  os << ']';
}

std::string at(Pos p) { return " @" + std::to_string(p.line) + ":" + std::to_string(p.col); }

void dumpStmts(const std::vector<Stmt> &body, llvm::raw_ostream &os) {
  for (const Stmt &s : body) {
    switch (s.kind) {
    case Stmt::Kind::Param:
    case Stmt::Kind::Input:
      os << (s.kind == Stmt::Kind::Param ? "  Param " : "  Input ") << s.name << ": ";
      dumpType(s.type, os);
      dumpSharding(s.sharding, os);
      if (s.init) {
        os << " init ";
        dumpCall(*s.init, os);
      }
      break;
    case Stmt::Kind::Assign:
      os << "  Assign " << s.name << " = ";
      dumpExpr(*s.expr, os);
      dumpSharding(s.sharding, os);
      break;
    case Stmt::Kind::Unpack:
      os << "  Unpack";
      for (const std::string &name : s.names)
        os << " " << name;
      os << " = ";
      dumpExpr(*s.expr, os);
      break;
    case Stmt::Kind::Repeat:
      os << "  Repeat " << s.name << " = repeat ";
      dumpExpr(*s.count, os);
      os << " ";
      dumpExpr(*s.expr, os);
      if (!s.recompute.empty())
        os << " recompute " << s.recompute;
      if (!s.pipelineAxis.empty())
        os << " pipeline " << s.pipelineAxis;
      break;
    case Stmt::Kind::Return:
      os << "  Return ";
      dumpExpr(*s.expr, os);
      break;
    }
    os << at(s.pos) << "\n";
  }
}

} // namespace

void dtl::ast::dump(const Program &program, llvm::raw_ostream &os) {
  for (const Import &i : program.imports)
    os << "Import \"" << i.path << "\"" << at(i.pos) << "\n";
  for (const Mesh &m : program.meshes) {
    os << "Mesh " << m.name << at(m.pos) << "\n";
    for (const MeshAxis &a : m.axes)
      os << "  Axis " << a.name << " = " << a.size << at(a.pos) << "\n";
  }
  for (const Model &m : program.models) {
    os << "Model " << m.name << at(m.pos) << "\n";
    for (const SizeParam &s : m.sizes)
      os << "  Size " << s.name << (s.defaultValue ? " = " + std::to_string(*s.defaultValue) : "")
         << at(s.pos) << "\n";
    dumpStmts(m.body, os);
  }
  for (const Block &blk : program.blocks) {
    os << "Block " << blk.name << "(";
    for (size_t i = 0; i < blk.args.size(); ++i)
      os << (i ? ", " : "") << blk.args[i];
    os << ")" << at(blk.pos) << "\n";
    dumpStmts(blk.body, os);
  }
  for (const Train &t : program.trains) {
    os << "Train " << t.model << " on " << t.mesh << at(t.pos) << "\n";
    for (const DataSource &d : t.data) {
      os << (d.isEval ? "  Eval " : "  Data ");
      for (size_t i = 0; i < d.names.size(); ++i)
        os << (i ? ", " : "") << d.names[i].name;
      os << " = ";
      dumpCall(*d.call, os);
      os << at(d.pos) << "\n";
    }
    for (const Setting &s : t.settings) {
      os << "  Setting " << s.key << " = ";
      dumpValue(s.value, os);
      os << at(s.pos) << "\n";
    }
  }
}
