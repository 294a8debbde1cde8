// RUN: dtl-opt %s --dtl-check-schedule --split-input-file --verify-diagnostics

// Pipeline-style programs: stage code is an scf.index_switch on the rank's
// pp coordinate, activations and gradients move with shard.send/recv. The
// check runs every rank's sequence against its peers' and refuses a
// schedule that cannot complete, at both ranks' operations.

// Two stages, two micro-batches, GPipe order: forwards (stage 0 sends,
// stage 1 receives), then backwards the other way; a data-parallel
// all-reduce of each stage's gradient over dp after. Accepted.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 2, "pp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @gpipe(%x: tensor<4x8xf32>, %g: tensor<8x8xf32>) -> tensor<8x8xf32> {
    %stage = shard.process_multi_index on @grid axes = [1] : index
    %r = scf.index_switch %stage -> tensor<8x8xf32>
    case 0 {
      %a = shard.send %x on @grid grid_axes = [1] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.send %x on @grid grid_axes = [1] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %c = shard.recv %x on @grid grid_axes = [1] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %d = shard.recv %x on @grid grid_axes = [1] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield %g : tensor<8x8xf32>
    }
    default {
      %a = shard.recv %x on @grid grid_axes = [1] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [1] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %c = shard.send %x on @grid grid_axes = [1] destination = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %d = shard.send %x on @grid grid_axes = [1] destination = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield %g : tensor<8x8xf32>
    }
    %sum = shard.all_reduce %r on @grid grid_axes = [0] : tensor<8x8xf32> -> tensor<8x8xf32>
    return %sum : tensor<8x8xf32>
  }
}

// -----

// A missing receive: stage 1 never takes the second micro-batch.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @missing_receive(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      %a = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      // expected-error @+1 {{rank 0 (0) waits at a send to rank 1 (1), but rank 1 (1) has finished: nothing matches it}}
      %b = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      %a = shard.recv %x on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// Swapped order: both stages send first (1F1B's steady state written
// wrongly): each waits for the other to receive.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @swapped(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      // expected-error @+1 {{rank 0 (0) waits at a send to rank 1 (1), but rank 1 (1) is at a send to rank 0 (0): each waits for the other (a deadlock)}}
      %a = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      // expected-note @+1 {{rank 1 (1)'s a send to rank 0 (0)}}
      %a = shard.send %x on @grid grid_axes = [0] destination = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// A collective one stage skips: the loss all-reduce over the whole mesh,
// which stage 1 runs and stage 0 does not.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @skipped_collective(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      scf.yield
    }
    default {
      // expected-error @+1 {{rank 1 (1) waits at 'shard.all_reduce', but rank 0 (0) has finished: it never reaches this collective}}
      %s = shard.all_reduce %x on @grid grid_axes = [0] : tensor<4x8xf32> -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// Two different collectives on one group, and a send whose receive expects
// another shape.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @different_collectives(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      // expected-error @+1 {{rank 0 (0) waits at 'shard.all_reduce', but rank 1 (1) is at 'shard.all_gather': a collective must be the same on every rank of its group}}
      %s = shard.all_reduce %x on @grid grid_axes = [0] : tensor<4x8xf32> -> tensor<4x8xf32>
      scf.yield
    }
    default {
      // expected-note @+1 {{rank 1 (1)'s 'shard.all_gather'}}
      %s = shard.all_gather %x on @grid grid_axes = [0] gather_axis = 0 : tensor<4x8xf32> -> tensor<8x8xf32>
      scf.yield
    }
    return
  }
}

// -----

module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @types(%x: tensor<4x8xf32>, %y: tensor<2x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      // expected-error @+1 {{rank 0 (0) waits at a send to rank 1 (1), but rank 1 (1) is at a receive from rank 0 (0): the tensors' types differ}}
      %a = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      // expected-note @+1 {{rank 1 (1)'s a receive from rank 0 (0)}}
      %a = shard.recv %y on @grid grid_axes = [0] source = [0] : (tensor<2x8xf32>) -> tensor<2x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// A send and its receive on different communicators (grid axes).
module attributes {dtl.mesh = #dtl.mesh<@grid, ["dp" = 1, "pp" = 2]>} {
  shard.grid @grid(shape = 1x2)
  func.func @communicators(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [1] : index
    scf.index_switch %stage
    case 0 {
      // expected-error @+1 {{rank 0 (0, 0) waits at a send to rank 1 (0, 1), but rank 1 (0, 1) is at a receive from rank 0 (0, 0): their grid axes (communicators) differ}}
      %a = shard.send %x on @grid grid_axes = [1] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      // expected-note @+1 {{rank 1 (0, 1)'s a receive from rank 0 (0, 0)}}
      %a = shard.recv %x on @grid grid_axes = [0, 1] source = [0, 0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// A repeat's body runs once per iteration: three micro-batches sent in a
// loop of 3 on stage 0 are received by a loop of 2 and one more on stage 1
// (accepted); a tensor-parallel all-reduce in the loop runs on every
// iteration of every stage.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2, "tp" = 2]>} {
  shard.grid @grid(shape = 2x2)
  func.func @repeat(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      %h = dtl.repeat 3 carry(%x : tensor<4x8xf32>) -> (tensor<4x8xf32>) {
      ^bb0(%i: index, %xi: tensor<4x8xf32>):
        %r = shard.all_reduce %xi on @grid grid_axes = [1] : tensor<4x8xf32> -> tensor<4x8xf32>
        %s = shard.send %r on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
        dtl.yield %s : tensor<4x8xf32>
      }
      scf.yield
    }
    default {
      %h = dtl.repeat 2 carry(%x : tensor<4x8xf32>) -> (tensor<4x8xf32>) {
      ^bb0(%i: index, %xi: tensor<4x8xf32>):
        %r = shard.recv %xi on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
        %s = shard.all_reduce %r on @grid grid_axes = [1] : tensor<4x8xf32> -> tensor<4x8xf32>
        dtl.yield %s : tensor<4x8xf32>
      }
      %last = shard.recv %h on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %t = shard.all_reduce %last on @grid grid_axes = [1] : tensor<4x8xf32> -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// The same with the last receive missing: stage 0's third send waits.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 2]>} {
  shard.grid @grid(shape = 2)
  func.func @repeat_short(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      %h = dtl.repeat 3 carry(%x : tensor<4x8xf32>) -> (tensor<4x8xf32>) {
      ^bb0(%i: index, %xi: tensor<4x8xf32>):
        // expected-error @+1 {{rank 0 (0) waits at a send to rank 1 (1), but rank 1 (1) has finished: nothing matches it}}
        %s = shard.send %xi on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
        dtl.yield %s : tensor<4x8xf32>
      }
      scf.yield
    }
    default {
      %h = dtl.repeat 2 carry(%x : tensor<4x8xf32>) -> (tensor<4x8xf32>) {
      ^bb0(%i: index, %xi: tensor<4x8xf32>):
        %r = shard.recv %xi on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
        dtl.yield %r : tensor<4x8xf32>
      }
      scf.yield
    }
    return
  }
}

// -----

// A stage that receives a gradient before it sends the activation its
// neighbour needs to compute that gradient (stage 1 of GPipe over three
// stages, with receives moved first by stage parity): stages 1 and 2 each
// wait to receive from the other. Stage 0 waits too, on stage 1; the report
// is at the cycle, not at a rank waiting on it.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 3]>} {
  shard.grid @grid(shape = 3)
  func.func @receive_too_early(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      %a = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    case 1 {
      %a = shard.recv %x on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      // expected-error @+1 {{rank 1 (1) waits at a receive from rank 2 (2), but rank 2 (2) is at a receive from rank 1 (1): each waits for the other (a deadlock)}}
      %b = shard.recv %x on @grid grid_axes = [0] source = [2] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %c = shard.send %x on @grid grid_axes = [0] destination = [2] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %d = shard.send %x on @grid grid_axes = [0] destination = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      // expected-note @+1 {{rank 2 (2)'s a receive from rank 1 (1)}}
      %a = shard.recv %x on @grid grid_axes = [0] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}

// -----

// An interleaved schedule's ring written wrongly: the last stage sends a
// micro-batch on to the first stage's next chunk, and every stage sends
// its chunk's output before it receives the next input. Each waits for the
// next to receive.
module attributes {dtl.mesh = #dtl.mesh<@grid, ["pp" = 3]>} {
  shard.grid @grid(shape = 3)
  func.func @ring(%x: tensor<4x8xf32>) {
    %stage = shard.process_multi_index on @grid axes = [0] : index
    scf.index_switch %stage
    case 0 {
      // expected-error @+1 {{rank 0 (0) waits at a send to rank 1 (1), but rank 1 (1) is at a send to rank 2 (2): ranks 0 -> 1 -> 2 -> 0 each wait for the next (a deadlock)}}
      %a = shard.send %x on @grid grid_axes = [0] destination = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [2] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    case 1 {
      // expected-note @+1 {{rank 1 (1)'s a send to rank 2 (2)}}
      %a = shard.send %x on @grid grid_axes = [0] destination = [2] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    default {
      %a = shard.send %x on @grid grid_axes = [0] destination = [0] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      %b = shard.recv %x on @grid grid_axes = [0] source = [1] : (tensor<4x8xf32>) -> tensor<4x8xf32>
      scf.yield
    }
    return
  }
}
