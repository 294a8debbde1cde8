//===- TrainSection.cpp - `train MODEL on MESH { ... }` -------------------===//
//
// The train section becomes the typed contract: #dtl.data for each source,
// #dtl.optimizer and #dtl.train on the module.
//
//===----------------------------------------------------------------------===//

#include "frontend/Generator.h"
#include "frontend/Parser.h"

#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace dtl;

DataAttr Generator::dataSource(const ast::DataSource &source) {
  const ast::Call &c = *source.call;
  SmallVector<Attribute> inputs, files;
  for (const ast::AxisRef &n : source.names) {
    if (!inputNames.contains(n.name))
      error(n.pos) << "'" << n.name << "' is not an input of the model";
    inputs.push_back(b.getStringAttr(n.name));
  }
  int64_t classes = 10, size = 1024;
  DataSourceKind kind;
  if (c.callee == "idx") {
    kind = DataSourceKind::idx;
    for (const ast::Arg &a : c.args) {
      if (!a.key.empty() || a.value->kind != ast::Value::Kind::String) {
        error(a.pos) << "idx(...) takes one file path (a string) per input";
        continue;
      }
      files.push_back(b.getStringAttr(a.value->string));
    }
    if (files.size() != source.names.size()) {
      error(c.pos) << "idx(...) has " << files.size() << " files for " << source.names.size()
                   << " inputs";
      return {};
    }
  } else if (c.callee == "synthetic") {
    kind = DataSourceKind::synthetic;
    for (const ast::Arg &a : c.args) {
      std::optional<int64_t> n = integer(*a.value);
      if ((a.key != "classes" && a.key != "size") || !n || *n < 1) {
        error(a.pos) << "synthetic(...) takes classes = N and size = N (positive integers)";
        continue;
      }
      (a.key == "classes" ? classes : size) = *n;
    }
  } else if (c.callee == "tokens") {
    kind = DataSourceKind::tokens;
    // llm.c token shards: windows of T + 1 tokens feed (ids, next-token targets).
    if (c.args.size() != 1 || !c.args[0].key.empty() ||
        c.args[0].value->kind != ast::Value::Kind::String) {
      error(c.pos) << "tokens(...) takes one file path (a string)";
      return {};
    }
    files.push_back(b.getStringAttr(c.args[0].value->string));
    auto inputType = [&](const ast::AxisRef &n) -> RankedTensorType {
      for (BlockArgument arg : fn.getArguments())
        if (argName(fn, arg.getArgNumber()) == n.name)
          return cast<RankedTensorType>(arg.getType());
      return {};
    };
    RankedTensorType first = source.names.size() == 2 ? inputType(source.names[0]) : nullptr;
    RankedTensorType second = source.names.size() == 2 ? inputType(source.names[1]) : nullptr;
    if (source.names.size() != 2 || !first || !second || first != second || first.getRank() != 2 ||
        !first.getElementType().isInteger(32)) {
      error(source.pos) << "tokens(...) feeds two i32 [B, T] inputs: the token ids and the "
                           "next-token targets (data idx, targets = tokens(\"train.bin\"))";
      return {};
    }
  } else {
    error(c.pos) << "unknown data source '" << c.callee << "' (known: idx, synthetic, tokens)";
    return {};
  }
  return DataAttr::getChecked([&] { return error(c.pos); }, &ctx, kind, b.getArrayAttr(inputs),
                              b.getArrayAttr(files), classes, size);
}

void Generator::emitTrain(ModuleOp module, const ast::Train &train) {
  DataAttr data, eval;
  for (const ast::DataSource &source : train.data) {
    DataAttr &slot = source.isEval ? eval : data;
    if (slot) {
      error(source.pos) << "a second '" << (source.isEval ? "eval" : "data") << "' source";
      continue;
    }
    slot = dataSource(source);
    if (!source.isEval) {
      llvm::StringSet<> fed;
      for (const ast::AxisRef &n : source.names)
        fed.insert(n.name);
      for (const auto &name : inputNames)
        if (!fed.contains(name.getKey()))
          error(source.pos) << "input '" << name.getKey() << "' gets no data from this source";
    }
  }
  if (!llvm::any_of(train.data, [](const ast::DataSource &d) { return !d.isEval; }))
    error(train.pos) << "the train section needs a 'data' source";

  int64_t steps = 100, logEvery = 10, evalEvery = 0, evalBatches = 0, seed = 0, warmup = 0,
          zero = 0;
  int64_t maxSkippedSteps = 10, checkpointEvery = 0, keepLast = 3, accumulate = 1, memoryLimit = 0;
  std::string checkpointDir = "checkpoints";
  double minLr = 0, clipGradNorm = 0;
  LrSchedule schedule = LrSchedule::constant;
  PipelineSchedule pipeline = PipelineSchedule::one_f_one_b;
  int64_t virtualStages = 1;
  ast::Pos virtualStagesPos;
  Precision precision = Precision::f32, reducePrecision = Precision::f32;
  OptimizerKind optimizer = OptimizerKind::sgd;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, momentum = 0;
  auto setInt = [&](const ast::Setting &s, int64_t min, int64_t &out) {
    std::optional<int64_t> n = integer(s.value);
    if (!n || *n < min)
      error(s.value.pos) << "'" << s.key << "' must be an integer >= " << min;
    else
      out = *n;
  };
  for (const ast::Setting &s : train.settings) {
    if (s.key == "steps") {
      setInt(s, 1, steps);
    } else if (s.key == "log_every") {
      setInt(s, 1, logEvery);
    } else if (s.key == "seed") {
      setInt(s, 0, seed);
    } else if (s.key == "eval_every") {
      setInt(s, 0, evalEvery);
    } else if (s.key == "eval_batches") {
      setInt(s, 0, evalBatches);
    } else if (s.key == "memory_limit") {
      std::optional<int64_t> bytes;
      if (s.value.kind == ast::Value::Kind::Bytes)
        bytes = parseBytes(s.value.string);
      if (!bytes || *bytes < 1)
        error(s.value.pos) << "'memory_limit' is a size per rank with a unit, e.g. 40GiB";
      else
        memoryLimit = *bytes;
    } else if (s.key == "accumulate" || s.key == "microbatches") {
      setInt(s, 1, accumulate);
    } else if (s.key == "pipeline") {
      std::optional<PipelineSchedule> order;
      const ast::Expr *e = s.value.kind == ast::Value::Kind::Expr ? s.value.expr.get() : nullptr;
      if (e && e->kind == ast::Expr::Kind::Name && e->name != "one_f_one_b" &&
          e->name != "interleaved")
        order = symbolizePipelineSchedule(e->name);
      else if (s.value.kind == ast::Value::Kind::OneFOneB)
        order = PipelineSchedule::one_f_one_b;
      else if (e && e->kind == ast::Expr::Kind::Call && e->call->callee == "interleaved" &&
               e->call->args.size() == 1 && e->call->args[0].key.empty()) {
        std::optional<int64_t> v = integer(*e->call->args[0].value);
        if (v && *v >= 1) {
          order = PipelineSchedule::interleaved;
          virtualStages = *v;
          virtualStagesPos = s.value.pos;
        }
      }
      if (!order)
        error(s.value.pos) << "'pipeline' is the stages' micro-batch order: gpipe, 1f1b or "
                              "interleaved(V) (V >= 1 virtual stages per rank)";
      else
        pipeline = *order;
    } else if (s.key == "max_skipped_steps") {
      setInt(s, 1, maxSkippedSteps);
    } else if (s.key == "checkpoint_every") {
      setInt(s, 0, checkpointEvery);
    } else if (s.key == "keep_last") {
      setInt(s, 0, keepLast);
    } else if (s.key == "checkpoint_dir") {
      if (s.value.kind != ast::Value::Kind::String || s.value.string.empty())
        error(s.value.pos) << "'checkpoint_dir' is a directory path (a non-empty string)";
      else
        checkpointDir = s.value.string;
    } else if (s.key == "clip_grad_norm") {
      std::optional<double> n = number(s.value);
      if (!n || !std::isfinite(*n) || *n < 0)
        error(s.value.pos) << "'clip_grad_norm' is the largest global gradient norm (a "
                              "non-negative number; 0: no clipping)";
      else
        clipGradNorm = *n;
    } else if (s.key == "zero") {
      std::optional<int64_t> n = integer(s.value);
      if (!n || *n < 0 || *n > 3)
        error(s.value.pos) << "'zero' is the ZeRO stage: 0, 1, 2 or 3";
      else
        zero = *n;
    } else if (s.key == "precision" || s.key == "reduce_precision") {
      bool isName =
          s.value.kind == ast::Value::Kind::Expr && s.value.expr->kind == ast::Expr::Kind::Name;
      if (!isName || (s.value.expr->name != "f32" && s.value.expr->name != "bf16"))
        error(s.value.pos) << "'" << s.key << "' is f32 or bf16"
                           << (s.key == "precision"
                                   ? " (bf16: bf16 storage with f32 master weights and optimizer "
                                     "state on the CPU target, bf16 GEMMs on the CUDA target)"
                                   : " (the type collectives sum gradients in)");
      else
        (s.key == "precision" ? precision : reducePrecision) =
            *symbolizePrecision(s.value.expr->name);
    } else if (s.key == "optimizer" || s.key == "schedule") {
      if (s.value.kind != ast::Value::Kind::Expr || s.value.expr->kind != ast::Expr::Kind::Call) {
        error(s.value.pos) << "'" << s.key << "' must be a call such as "
                           << (s.key == "optimizer" ? "adamw(lr = 1e-3)"
                                                    : "warmup_cosine(warmup = 100)");
        continue;
      }
      const ast::Call &c = *s.value.expr->call;
      bool isOptimizer = s.key == "optimizer";
      static const llvm::StringMap<SmallVector<StringRef>> known = {
          {"adamw", {"lr", "betas", "eps", "weight_decay"}},
          {"sgd", {"lr", "momentum", "weight_decay"}},
          {"constant", {}},
          {"warmup_cosine", {"warmup", "min_lr"}},
          {"cosine", {"min_lr"}},
          {"warmup", {"warmup"}}};
      std::optional<OptimizerKind> optimizerKind = symbolizeOptimizerKind(c.callee);
      std::optional<LrSchedule> scheduleKind = symbolizeLrSchedule(c.callee);
      if (isOptimizer ? !optimizerKind : !scheduleKind) {
        error(c.pos) << "unknown " << s.key << " '" << c.callee << "' (known: "
                     << (isOptimizer ? "adamw, sgd" : "constant, warmup, cosine, warmup_cosine")
                     << ")";
        continue;
      }
      if (isOptimizer)
        optimizer = *optimizerKind;
      else
        schedule = *scheduleKind;
      for (const ast::Arg &a : c.args) {
        const SmallVector<StringRef> &params = known.lookup(c.callee);
        if (a.key.empty() || !llvm::is_contained(params, a.key)) {
          error(a.pos) << "'" << c.callee
                       << "' takes named arguments: " << llvm::join(params, ", ");
          continue;
        }
        if (a.key == "betas") {
          if (a.value->kind != ast::Value::Kind::Tuple || a.value->tuple.size() != 2 ||
              !number(a.value->tuple[0]) || !number(a.value->tuple[1])) {
            error(a.pos) << "betas must be a pair of numbers, e.g. (0.9, 0.999)";
            continue;
          }
          beta1 = *number(a.value->tuple[0]);
          beta2 = *number(a.value->tuple[1]);
          continue;
        }
        std::optional<double> n = number(*a.value);
        if (!n || *n < 0) {
          error(a.pos) << "'" << a.key << "' must be a non-negative number";
          continue;
        }
        llvm::StringMap<double *> reals = {{"lr", &lr},
                                           {"eps", &eps},
                                           {"weight_decay", &weightDecay},
                                           {"momentum", &momentum},
                                           {"min_lr", &minLr}};
        if (a.key == "warmup")
          warmup = (int64_t)*n;
        else
          *reals.lookup(a.key) = *n;
      }
    } else {
      error(s.pos)
          << "unknown train setting '" << s.key
          << "' (known: data, eval, optimizer, schedule, steps, log_every, "
             "eval_every, eval_batches, seed, zero, microbatches (or accumulate), pipeline, "
             "memory_limit, precision, "
             "reduce_precision, "
             "clip_grad_norm, max_skipped_steps, checkpoint_every, keep_last, "
             "checkpoint_dir)";
    }
  }
  if (hadError)
    return;
  if (pipeline == PipelineSchedule::interleaved && virtualStages == 1)
    pipeline = PipelineSchedule::one_f_one_b; // what interleaving one chunk per rank is
  if (pipeline == PipelineSchedule::interleaved &&
      !interleaveStages(virtualStages, accumulate, virtualStagesPos))
    return;
  if (options.precision) {
    precision = *options.precision;
    if (reducePrecision == Precision::bf16 && precision != Precision::bf16) {
      mlir::emitWarning(loc(train.pos))
          << "reduce_precision = bf16 is ignored: --precision=" << stringifyPrecision(precision)
          << " sums gradients in " << stringifyPrecision(precision);
      reducePrecision = Precision::f32;
    }
  }
  auto optimizerAttr =
      OptimizerAttr::getChecked([&] { return error(train.pos); }, &ctx, optimizer, F64(lr),
                                F64(beta1), F64(beta2), F64(eps), F64(weightDecay), F64(momentum));
  auto trainAttr = TrainAttr::getChecked(
      [&] { return error(train.pos); }, &ctx, data, eval, steps, logEvery, evalEvery, evalBatches,
      seed, schedule, warmup, F64(minLr), zero, accumulate, pipeline, memoryLimit, precision,
      reducePrecision, F64(clipGradNorm), maxSkippedSteps, checkpointEvery, keepLast,
      StringRef(checkpointDir));
  if (!optimizerAttr || !trainAttr)
    return;
  module->setAttr(attr::optimizer, optimizerAttr);
  module->setAttr(attr::train, trainAttr);
}

/// Gives the pipelined repeat `chunks` virtual stages per rank: its stacked
/// params stored so that each stage's block holds its chunks of layers.
bool Generator::interleaveStages(int64_t chunks, int64_t microBatches, ast::Pos pos) {
  RepeatOp repeat = pipelinedRepeat;
  if (!repeat)
    return true; // nothing pipelined (or it failed, reported already)
  int64_t stages = meshShape[meshAxis(*repeat.getPipeline())];
  if (stages == 1)
    return true; // one stage runs its layers as they are
  int64_t layers = repeat.getCount();
  if (layers % (stages * chunks)) {
    error(pos) << "interleaved(" << chunks << ") splits " << layers << " layers into " << stages
               << " stages of " << chunks << " virtual stages of equal size, which does not divide";
    return false;
  }
  if (microBatches % stages) {
    error(pos) << "interleaved(" << chunks << ") runs micro-batches in groups of the " << stages
               << " stages (Megatron's order): 'microbatches' must be a multiple of " << stages
               << ", got " << microBatches;
    return false;
  }
  repeat.setVirtualStages(chunks);
  SmallVector<int64_t> order{0, stages};
  order.append(chunks, layers / chunks);
  for (Value stacked : repeat.getStacked())
    if (auto arg = dyn_cast<BlockArgument>(stacked))
      fn.setArgAttr(arg.getArgNumber(), attr::interleave, b.getDenseI64ArrayAttr(order));
  return true;
}
