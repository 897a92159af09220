//! A stage thread: drives one engine [`Service`] through its internal
//! clients. It blocks on its channel (no poll, no sockets): a `Flush`
//! command means its internal clients have deliveries, an `Event` is a
//! server event, and the service's own timer bounds the wait.
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use natsd_engine::internal::{Delivery, Internal, Service};
use natsd_engine::outbound::Outbound;
use natsd_engine::server::Server;

use crate::reactor::{Cmd, Load, ReactorHandle};

/// One stage: its place in the wake table, its inbox and its service.
pub(crate) struct Stage {
    id: usize,
    rx: Receiver<Cmd>,
    service: Box<dyn Service>,
    net: Internal,
    load: Arc<Load>,
    /// The deliveries being handled (reused from batch to batch).
    batch: Vec<Delivery>,
}

/// Deliveries handled per round before the stage checks its inbox again.
const ROUND: usize = 4096;
/// How long an idle stage polls its inbox before it parks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// Deliveries handled before the service ends a batch (writes what it
/// stored, sends the replies it held).
const SLICE: usize = 64;
/// Deliveries kept allocated between batches.
const BATCH_KEEP: usize = 4096;

impl Stage {
    /// A stage at index `id` of the wake table (after the reactors); returns
    /// it with the handle others reach it by.
    pub(crate) fn new(
        id: usize,
        server: Arc<Server>,
        mut service: Box<dyn Service>,
    ) -> (Self, ReactorHandle) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let seed = (id as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let mut net = Internal::new(server, id, seed);
        // Subscribe before anything listens: a client that connects the
        // moment the server says it is ready finds the service there.
        service.start(Instant::now(), &mut net);
        let load = Arc::new(Load::default());
        (
            Stage {
                id,
                rx,
                service,
                net,
                load: load.clone(),
                batch: Vec::new(),
            },
            ReactorHandle::for_stage(tx, load),
        )
    }

    /// Run until `Shutdown` (or every sender is gone). `peers` is the whole
    /// wake table: reactors, then stages.
    pub(crate) fn run(mut self, peers: Arc<[ReactorHandle]>) {
        let mut remote: Vec<Vec<Arc<Outbound>>> = (0..peers.len()).map(|_| Vec::new()).collect();
        loop {
            self.pump(&peers, &mut remote);
            let spin_until = Instant::now() + SPIN;
            let mut spun = None;
            // The clock is read once per 64 polls: the spin costs the
            // channel check, not a clock read each time.
            'spin: while Instant::now() < spin_until {
                for _ in 0..64 {
                    spun = self.rx.try_recv().ok();
                    if spun.is_some() {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
            }
            let cmd = match (spun, self.service.poll_timeout()) {
                (Some(cmd), _) => Some(cmd),
                (None, Some(at)) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(cmd) => Some(cmd),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                (None, None) => match self.rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => return,
                },
            };
            let mut pending = cmd;
            while let Some(cmd) = pending.take().or_else(|| self.rx.try_recv().ok()) {
                let now = Instant::now();
                match cmd {
                    Cmd::Shutdown => {
                        // What is queued first, so a request that came
                        // before the shutdown gets the service's last word.
                        self.pump(&peers, &mut remote);
                        self.service.shutdown(Instant::now(), &mut self.net);
                        self.pump(&peers, &mut remote);
                        return;
                    }
                    Cmd::Event(ev) => self.service.handle_event(now, *ev, &mut self.net),
                    Cmd::Snapshot(reply) => {
                        let _ = reply.send(Vec::new());
                    }
                    Cmd::Reload(_) => self.service.reloaded(now, &mut self.net),
                    Cmd::Flush(_)
                    | Cmd::LameDuck { .. }
                    | Cmd::Accept(..)
                    | Cmd::Routes(_)
                    | Cmd::ClusterInfo => {}
                }
            }
            let now = Instant::now();
            if self.service.poll_timeout().is_some_and(|at| at <= now) {
                self.service.handle_timeout(now, &mut self.net);
            }
        }
    }

    /// Wake the reactors owning what the service published; true if some
    /// of it went to this stage's own clients.
    fn wake_owners(
        net: &mut Internal,
        id: usize,
        peers: &[ReactorHandle],
        remote: &mut [Vec<Arc<Outbound>>],
    ) -> bool {
        let mut own = false;
        for out in net.take_wakes() {
            let owner = out.owner().reactor;
            if owner == id {
                own = true;
            } else if let Some(batch) = remote.get_mut(owner) {
                batch.push(out);
            }
        }
        for (r, batch) in remote.iter_mut().enumerate() {
            if !batch.is_empty() {
                peers[r].send(Cmd::Flush(std::mem::take(batch)));
            }
        }
        own
    }

    /// Hand every queued delivery to the service, then wake the owners of
    /// what it published; repeat while its own clients got more.
    fn pump(&mut self, peers: &[ReactorHandle], remote: &mut [Vec<Arc<Outbound>>]) {
        loop {
            let mut handled = 0;
            self.net.take_deliveries_into(&mut self.batch);
            // One clock read per batch: a batch's messages share their
            // arrival time.
            let now = Instant::now();
            let mut again = false;
            let mut msgs = self.batch.drain(..).peekable();
            while msgs.peek().is_some() {
                // A slice of the batch at a time: its replies go out while
                // the rest is handled, so the reactors and the clients work
                // alongside the stage instead of waiting for the whole batch.
                for msg in msgs.by_ref().take(SLICE) {
                    self.service.handle_msg(now, msg, &mut self.net);
                    handled += 1;
                }
                self.service.end_batch(now, &mut self.net);
                again |= Self::wake_owners(&mut self.net, self.id, peers, remote);
            }
            drop(msgs);
            if handled == 0 {
                // What timers or events published since the last pump.
                self.service.end_batch(now, &mut self.net);
                again |= Self::wake_owners(&mut self.net, self.id, peers, remote);
            }
            if self.batch.capacity() > BATCH_KEEP {
                self.batch = Vec::new();
            }
            self.load
                .handled
                .fetch_add(handled as u64, std::sync::atomic::Ordering::Relaxed);
            if !again || handled >= ROUND {
                if again {
                    // Let the inbox in; come straight back for the rest.
                    if let Some(me) = peers.get(self.id) {
                        me.send(Cmd::Flush(Vec::new()));
                    }
                }
                return;
            }
        }
    }
}
