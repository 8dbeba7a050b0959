//! Online template mining: turns a stream of log messages into a bounded set of message
//! templates (`PacketResponder <*> for block <*> terminating`), one stable cluster id per
//! template.
//!
//! The `fingerprint` transform needs, for a message without a stack trace, a key that is the same
//! for every occurrence of one log statement whatever request id, address, path or count it
//! carries (DESIGN §6.1). It runs inline on every entry, forever, so the miner must be cheap per
//! line, never look back at old lines, and keep its memory bounded.
//!
//! # Design
//!
//! Two stages, in the spirit of Drain (He et al., ICWS 2017):
//!
//! 1. **Masking**, one pass over the bytes, no regex. The message is split on whitespace and
//!    each token whose shape is a value's becomes `<*>`: anything with a digit (numbers, hex,
//!    UUIDs, IPv4/IPv6 with ports, ids, timestamps), paths, URLs, e-mail addresses, the value of
//!    `key=value` and `key:value`, a quoted token, empty brackets. Brackets and punctuation
//!    around a value are kept (`[<*>]`, `uid=<*>`) so the template still reads like the line,
//!    except brackets that close one opened inside the value (`LOCAL(0),` is `<*>,`), a
//!    path with a query string is one value like a URL, and so is a truth value or nothing
//!    after `key:` (`overlap:true`, `ret:null`),
//!    and a run of values (`blk_1 blk_2 blk_3`) becomes one `<*>`. A value may be written in a
//!    varying number of tokens, so two shapes around a quantity (a plain number) are part of it:
//!    a bracketed value right after it, or after it and one word, restates it
//!    (`1190 bytes (1.16 KB)`, `10.0.0.1 (host-10-0-0-1.example.net)`) and appears or not
//!    depending on the value, so it is dropped; and a word of one to three letters that ends the
//!    message after it is its unit (`lifetime <1 sec` beside `lifetime 00:01`). Inside a message
//!    a short word after a number is kept: there it as often is text that tells statements apart
//!    (`Total disk: 15 GB, used` beside `Total memory: 512 MB, used`). Only shapes are judged: no
//!    list of words (units, month names, domains) is consulted, since any such list is a guess
//!    at what some system writes.
//! 2. **Clustering** in a fixed-depth prefix tree: the token count, then the first
//!    [`MinerConfig::prefix_depth`] tokens pick a leaf; there the message joins the most similar
//!    cluster if it shares enough of the template's constant tokens, and the positions that
//!    differ become `<*>`. This catches the values masking cannot see (user names, host names
//!    without digits).
//!
//! Where this departs from Drain, and why:
//!
//! * **Some differences are never generalised.** One threshold cannot tell a variable word from a
//!   different constant: `from NEW to UNASSIGNED` vs `from UNASSIGNED to ASSIGNED` looks as alike
//!   as `user admin` vs `user oracle`. So a template never generalises over an ALL-CAPS
//!   identifier or a punctuation-only token (states, error codes, `****`), over the text kept
//!   around a masked value (`uid=<*>` vs `euid=<*>`, `[<*>]` vs `<*>`), or over two different
//!   words in a row: after masking a value is one token, so a run of different words is
//!   different text (`Link has been severed` vs `Connection reset by peer`).
//! * **Dotted names do not key the tree.** A leading `com.apple.xpc.launchd:` or Java class name
//!   varies as often as it names the statement, so it takes the wildcard branch and is compared
//!   by similarity like any other token.
//! * **Similarity counts constants only.** Drain counts every position, so short messages that
//!   are mostly values look alike whatever their words (`[<*>] <*> ready` vs `[<*>] <*> stopped`
//!   agree on two positions of three). Here the score is the share of the template's constant
//!   tokens that the message repeats; values on both sides are no evidence either way.
//!
//! The choices that could be tuned (threshold, depth, and the first two rules, which can be
//! switched off in [`MinerConfig`]) are checked leave-one-dataset-out on loghub-2k by
//! `tests/template_miner_accuracy.rs`: each is picked on eleven datasets and scored on the
//! twelfth. The default is one configuration for every log format.
//!
//! # Cost and bounds
//!
//! Per message: one scan to split and mask into a reused buffer, one 64-bit hash per token, a
//! few hash-map lookups down the tree, and a comparison of token hashes against the clusters of
//! one leaf. Nothing is allocated unless a cluster is created or its template changes. Memory is
//! bounded by [`MinerConfig::max_clusters`] (least recently used clusters are evicted),
//! [`MinerConfig::max_children`] per tree node, [`MinerConfig::max_leaf_clusters`] per leaf and
//! [`MinerConfig::max_tokens`] per template; a token longer than 256 bytes is masked.
//!
//! A cluster id never changes and is never reused; its template text may generalise over time.
//! An evicted template that comes back gets a new id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// The text that stands for a variable part of a message in a template.
pub const WILDCARD: &str = "<*>";

/// Tokens longer than this are masked: a blob without spaces this long is data (base64, JSON, a
/// serialised object), and keeping it in a template would make the memory bound meaningless.
const MAX_TOKEN_BYTES: usize = 256;

/// The largest `max_tokens` accepted. A masked token is at most 259 bytes (256 bytes of the
/// message and `<*>`), so a masked message stays far below the `u32` offsets used for its
/// tokens.
const MAX_TOKENS_LIMIT: usize = 4096;

/// How the miner clusters and how much it may remember. `Default` is the one configuration used
/// for every log format; nothing in it is tuned per source.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerConfig {
    /// Share of a template's constant tokens that a message must repeat, at the same positions,
    /// to join that template's cluster. Default 0.7: of two or three constants all must agree,
    /// of four three. With masking doing most of the work the choice matters little: on
    /// loghub-2k, 0.6 to 0.8 move the average grouping accuracy by less than 0.003.
    pub similarity_threshold: f64,
    /// Number of leading tokens used as keys in the prefix tree, after the token count. A
    /// message only meets clusters that share these tokens (values share a wildcard key), so
    /// they are never generalised. Default 2.
    pub prefix_depth: usize,
    /// Children per tree node; past this, new keys share the node's wildcard child, which bounds
    /// the tree when a leading token is a value that masking missed. Default 128.
    pub max_children: usize,
    /// Clusters per tree leaf; past this, the leaf's least recently used cluster is evicted, so
    /// that matching a message never compares it with more than this many templates.
    /// Default 256.
    pub max_leaf_clusters: usize,
    /// Clusters in total; past this, the least recently used are evicted. Default 20,000.
    pub max_clusters: usize,
    /// Tokens per message that are compared; the rest of a longer message is one last token.
    /// Default 128, at most 4096.
    pub max_tokens: usize,
    /// A template never generalises over an ALL-CAPS identifier or a punctuation-only token
    /// (`UNASSIGNED`, `CBS_E_INVALID_PACKAGE`, `****`): these name states and codes. Default on;
    /// off, they are compared like any other word. A switch so that the rule can be evaluated.
    pub keep_keywords: bool,
    /// A template never generalises over two different words in a row. Default on; a switch so
    /// that the rule can be evaluated.
    pub split_word_runs: bool,
    /// A dotted name (`com.apple.xpc.launchd:`, `org.apache.Foo`) takes the tree's wildcard
    /// branch instead of keying it. Default on; a switch so that the rule can be evaluated.
    pub dotted_names_vary: bool,
    /// Two shapes around a quantity are part of its value: a bracketed value right after it
    /// (or after it and one word) that restates it, and a word that ends the message right
    /// after it (its unit). Default on; a switch so that the rule can be evaluated.
    pub quantity_shapes: bool,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            similarity_threshold: 0.7,
            prefix_depth: 2,
            max_children: 128,
            max_leaf_clusters: 256,
            max_clusters: 20_000,
            max_tokens: 128,
            keep_keywords: true,
            split_word_runs: true,
            dotted_names_vary: true,
            quantity_shapes: true,
        }
    }
}

/// The cluster a message was assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMatch {
    /// Stable for the life of the cluster; never reused by another cluster.
    pub cluster_id: u64,
    /// The cluster's template as it is after this message; shared, so cloning is a refcount.
    pub template: Arc<str>,
    /// True when this message created the cluster.
    pub is_new: bool,
}

/// `message` with its variable parts masked as the miner masks them (`<*>`): numbers, hex,
/// ids, quoted values, paths, addresses. For text seen once, such as an exception's message,
/// where no cluster is wanted, only the miner's judgement of what is a value.
pub fn masked(message: &str) -> String {
    TemplateMiner::new(MinerConfig::default())
        .add(message.as_bytes())
        .template
        .to_string()
}

/// An online, bounded-memory log template miner. See the module documentation.
#[derive(Debug)]
pub struct TemplateMiner {
    config: MinerConfig,
    /// Tree nodes; index 0 is the root, whose children are keyed by token count.
    nodes: Vec<Node>,
    free_nodes: Vec<u32>,
    /// Cluster slots; `None` marks a free slot listed in `free_clusters`.
    clusters: Vec<Option<Cluster>>,
    free_clusters: Vec<u32>,
    live_clusters: usize,
    /// Cluster id → slot, for [`TemplateMiner::template`].
    slot_of: HashMap<u64, u32, IdBuild>,
    next_id: u64,
    /// Logical clock for least-recently-used eviction: one tick per message.
    tick: u64,
    /// Reused for every message, so that masking allocates nothing in the steady state.
    scratch: Scratch,
}

impl TemplateMiner {
    pub fn new(config: MinerConfig) -> Self {
        let config = MinerConfig {
            similarity_threshold: config.similarity_threshold.clamp(0.0, 1.0),
            max_children: config.max_children.max(1),
            max_leaf_clusters: config.max_leaf_clusters.max(1),
            max_clusters: config.max_clusters.max(1),
            max_tokens: config.max_tokens.clamp(1, MAX_TOKENS_LIMIT),
            ..config
        };
        TemplateMiner {
            config,
            nodes: vec![Node::new(NO_NODE, 0)],
            free_nodes: Vec::new(),
            clusters: Vec::new(),
            free_clusters: Vec::new(),
            live_clusters: 0,
            slot_of: HashMap::default(),
            next_id: 1,
            tick: 0,
            scratch: Scratch::default(),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    /// Number of clusters currently held.
    pub fn len(&self) -> usize {
        self.live_clusters
    }

    pub fn is_empty(&self) -> bool {
        self.live_clusters == 0
    }

    /// The current template of a cluster, if it has not been evicted.
    pub fn template(&self, cluster_id: u64) -> Option<Arc<str>> {
        let slot = *self.slot_of.get(&cluster_id)?;
        self.cluster(slot).map(|c| c.template.clone())
    }

    /// Assigns `message` (any bytes, not necessarily UTF-8) to a cluster, creating or
    /// generalising one as needed.
    pub fn add(&mut self, message: &[u8]) -> TemplateMatch {
        self.tick += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.mask(message, self.config.max_tokens, self.config.quantity_shapes);
        let found = self.find_leaf(&scratch.tokens);
        let result = match found.and_then(|leaf| self.best_match(leaf, &scratch.tokens)) {
            Some(slot) => self.absorb(slot, &scratch),
            None => self.create(&scratch),
        };
        self.scratch = scratch;
        result
    }

    fn cluster(&self, slot: u32) -> Option<&Cluster> {
        self.clusters.get(slot as usize).and_then(Option::as_ref)
    }

    /// Walks down the tree without creating anything. A key not seen at a node falls back to
    /// the node's wildcard child, where clusters with a generalised key live.
    fn find_leaf(&self, tokens: &[Token]) -> Option<u32> {
        let mut node = *self.nodes[0].children.get(&length_key(tokens.len()))?;
        for token in tokens.iter().take(self.config.prefix_depth) {
            let children = &self.nodes[node as usize].children;
            node = match children.get(&token.tree_key(&self.config)) {
                Some(&child) => child,
                None => *children.get(&WILD_KEY)?,
            };
        }
        Some(node)
    }

    /// Walks down the tree, creating the path as needed.
    fn leaf_for(&mut self, tokens: &[Token]) -> u32 {
        let mut node = self.child_for(0, length_key(tokens.len()));
        for token in tokens.iter().take(self.config.prefix_depth) {
            let key = token.tree_key(&self.config);
            node = self.child_for(node, key);
        }
        node
    }

    fn child_for(&mut self, node: u32, key: u64) -> u32 {
        let children = &self.nodes[node as usize].children;
        if let Some(&child) = children.get(&key) {
            return child;
        }
        // A node that already has many distinct keys at this position is looking at a value,
        // not at a constant: the newcomer shares the wildcard child. (The root's keys are token
        // counts, bounded by `max_tokens`.)
        let key = if node != 0 && children.len() >= self.config.max_children {
            WILD_KEY
        } else {
            key
        };
        if let Some(&child) = self.nodes[node as usize].children.get(&key) {
            return child;
        }
        let child = match self.free_nodes.pop() {
            Some(free) => {
                self.nodes[free as usize] = Node::new(node, key);
                free
            }
            None => {
                self.nodes.push(Node::new(node, key));
                (self.nodes.len() - 1) as u32
            }
        };
        self.nodes[node as usize].children.insert(key, child);
        child
    }

    /// The most similar cluster of the leaf, if it is similar enough.
    fn best_match(&self, leaf: u32, tokens: &[Token]) -> Option<u32> {
        let mut best: Option<(u32, Similarity)> = None;
        for &slot in &self.nodes[leaf as usize].clusters {
            let Some(cluster) = self.cluster(slot) else {
                continue;
            };
            let Some(sim) = compare(&cluster.slots, tokens, &self.config) else {
                continue;
            };
            if best.is_none_or(|(_, b)| sim.better_than(b)) {
                best = Some((slot, sim));
            }
        }
        let (slot, sim) = best?;
        (sim.shared as f64 >= self.config.similarity_threshold * sim.constants as f64)
            .then_some(slot)
    }

    fn absorb(&mut self, slot: u32, scratch: &Scratch) -> TemplateMatch {
        let tick = self.tick;
        let Some(cluster) = self
            .clusters
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
        else {
            return self.create(scratch); // not reached: best_match returns live slots
        };
        cluster.last_used = tick;
        let mut changed = false;
        for (s, t) in cluster.slots.iter_mut().zip(&scratch.tokens) {
            if !s.wild && s.hash != t.hash {
                s.wild = true;
                changed = true;
            }
        }
        if changed {
            cluster.template = cluster.render();
        }
        TemplateMatch {
            cluster_id: cluster.id,
            template: cluster.template.clone(),
            is_new: false,
        }
    }

    fn create(&mut self, scratch: &Scratch) -> TemplateMatch {
        let leaf = self.leaf_for(&scratch.tokens);
        let leaf = if self.nodes[leaf as usize].clusters.len() >= self.config.max_leaf_clusters {
            let oldest = self.nodes[leaf as usize]
                .clusters
                .iter()
                .copied()
                .min_by_key(|&s| self.cluster(s).map_or(0, |c| c.last_used));
            if let Some(oldest) = oldest {
                self.remove(oldest);
            }
            // Removing may have pruned the leaf's path; walk again (only on this rare path).
            self.leaf_for(&scratch.tokens)
        } else {
            leaf
        };
        let id = self.next_id;
        self.next_id += 1;
        let cluster = Cluster::new(id, leaf, self.tick, scratch);
        let template = cluster.template.clone();
        let slot = match self.free_clusters.pop() {
            Some(free) => {
                self.clusters[free as usize] = Some(cluster);
                free
            }
            None => {
                self.clusters.push(Some(cluster));
                (self.clusters.len() - 1) as u32
            }
        };
        self.nodes[leaf as usize].clusters.push(slot);
        self.slot_of.insert(id, slot);
        self.live_clusters += 1;
        if self.live_clusters > self.config.max_clusters {
            self.evict_least_recent(slot);
        }
        TemplateMatch {
            cluster_id: id,
            template,
            is_new: true,
        }
    }

    /// Evicts a batch of the least recently used clusters (never `keep`, the one just made).
    /// Evicting a sixteenth at a time keeps the cost of the full scan a small constant per
    /// created cluster.
    fn evict_least_recent(&mut self, keep: u32) {
        let mut ages: Vec<(u64, u32)> = self
            .clusters
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (c.last_used, slot as u32)))
            .filter(|&(_, slot)| slot != keep)
            .collect();
        let batch = (self.config.max_clusters / 16).clamp(1, ages.len().max(1));
        if ages.is_empty() {
            return;
        }
        ages.select_nth_unstable(batch - 1);
        for &(_, slot) in &ages[..batch] {
            self.remove(slot);
        }
    }

    /// Removes a cluster and prunes the tree nodes it leaves empty.
    fn remove(&mut self, slot: u32) {
        let Some(cluster) = self.clusters.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.free_clusters.push(slot);
        self.live_clusters -= 1;
        self.slot_of.remove(&cluster.id);
        let leaf = &mut self.nodes[cluster.leaf as usize].clusters;
        if let Some(pos) = leaf.iter().position(|&s| s == slot) {
            leaf.swap_remove(pos);
        }
        let mut node = cluster.leaf;
        while node != 0 {
            let n = &self.nodes[node as usize];
            if !n.clusters.is_empty() || !n.children.is_empty() {
                break;
            }
            let (parent, key) = (n.parent, n.key);
            self.nodes[parent as usize].children.remove(&key);
            self.nodes[node as usize] = Node::new(NO_NODE, 0);
            self.free_nodes.push(node);
            node = parent;
        }
    }
}

impl Default for TemplateMiner {
    fn default() -> Self {
        TemplateMiner::new(MinerConfig::default())
    }
}

/// How alike a message is to a template: `shared` of the template's `constants` constant
/// tokens are repeated by the message.
#[derive(Debug, Clone, Copy)]
struct Similarity {
    shared: usize,
    constants: usize,
}

impl Similarity {
    /// Higher share first (compared without division), then more shared constants: the more
    /// specific template wins a tie.
    fn better_than(self, other: Similarity) -> bool {
        let (a, b) = (
            self.shared * other.constants.max(1),
            other.shared * self.constants.max(1),
        );
        a > b || (a == b && self.shared > other.shared)
    }
}

/// Compares a template with a message of the same length; `None` when they differ in a way a
/// template never generalises over (see the module documentation).
fn compare(slots: &[Slot], tokens: &[Token], config: &MinerConfig) -> Option<Similarity> {
    let mut sim = Similarity {
        shared: 0,
        constants: 0,
    };
    let mut previous_word_differs = false;
    for (s, t) in slots.iter().zip(tokens) {
        let mut word_differs = false;
        if s.wild || (s.kind == Kind::Variable && t.kind == Kind::Variable) {
            // A value on both sides: no evidence either way.
        } else if s.hash == t.hash {
            sim.shared += 1;
            sim.constants += 1;
        } else {
            let word = |k: Kind| k == Kind::Word || (k == Kind::Keyword && !config.keep_keywords);
            match (s.kind, t.kind) {
                (Kind::Shaped, _) | (_, Kind::Shaped) => return None,
                (a, b) if word(a) && word(b) => {
                    if previous_word_differs && config.split_word_runs {
                        return None;
                    }
                    word_differs = true;
                }
                (Kind::Keyword, _) | (_, Kind::Keyword) if config.keep_keywords => return None,
                // A word against a value: the word may be a value too (user `0` or `admin`).
                _ => {}
            }
            sim.constants += 1;
        }
        previous_word_differs = word_differs;
    }
    Some(sim)
}

const NO_NODE: u32 = u32::MAX;

/// The tree key of values: they all share it, so a value never splits the tree.
const WILD_KEY: u64 = 0x9e37_79b9_7f4a_7c15;

fn length_key(n: usize) -> u64 {
    mix(n as u64 ^ 0x5151_5151)
}

#[derive(Debug)]
struct Node {
    parent: u32,
    /// The key under which `parent` holds this node, to unlink it when it empties.
    key: u64,
    children: HashMap<u64, u32, IdBuild>,
    /// Cluster slots; only leaves have any.
    clusters: Vec<u32>,
}

impl Node {
    fn new(parent: u32, key: u64) -> Self {
        Node {
            parent,
            key,
            children: HashMap::default(),
            clusters: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Cluster {
    id: u64,
    leaf: u32,
    last_used: u64,
    slots: Vec<Slot>,
    /// The masked text of the first message, tokens back to back; `bounds[i]..bounds[i + 1]`
    /// is token `i`. Kept to render the template when a position turns into a wildcard.
    text: Box<[u8]>,
    bounds: Box<[u32]>,
    template: Arc<str>,
}

/// One position of a template.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    kind: Kind,
    /// Generalised: differed between two messages of the cluster.
    wild: bool,
}

impl Cluster {
    fn new(id: u64, leaf: u32, tick: u64, scratch: &Scratch) -> Self {
        let mut bounds = Vec::with_capacity(scratch.tokens.len() + 1);
        bounds.push(0);
        let mut text = Vec::new();
        let mut slots = Vec::with_capacity(scratch.tokens.len());
        for t in &scratch.tokens {
            text.extend_from_slice(&scratch.text[t.start as usize..t.end as usize]);
            bounds.push(text.len() as u32);
            slots.push(Slot {
                hash: t.hash,
                kind: t.kind,
                wild: false,
            });
        }
        let mut cluster = Cluster {
            id,
            leaf,
            last_used: tick,
            slots,
            text: text.into_boxed_slice(),
            bounds: bounds.into_boxed_slice(),
            template: Arc::from(""),
        };
        cluster.template = cluster.render();
        cluster
    }

    /// The template text; lossy UTF-8 here, at the edge, because it is shown and serialised.
    fn render(&self) -> Arc<str> {
        let mut out = Vec::with_capacity(self.text.len() + self.slots.len());
        for (i, slot) in self.slots.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            if slot.wild {
                out.extend_from_slice(WILDCARD.as_bytes());
            } else {
                let (a, b) = (self.bounds[i] as usize, self.bounds[i + 1] as usize);
                out.extend_from_slice(&self.text[a..b]);
            }
        }
        Arc::from(String::from_utf8_lossy(&out))
    }
}

// ---------------------------------------------------------------------------------------------
// Masking

/// What a token is, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A value, masked to exactly `<*>`.
    Variable,
    /// A value masked with text kept around it (`uid=<*>`, `[<*>]`): that text is constant.
    Shaped,
    /// An ordinary token: a difference here may be a value that masking could not recognise.
    Word,
    /// An ALL-CAPS identifier (`LOOKING`, `CBS_E_INVALID_PACKAGE`, `HTTPS`) or punctuation only
    /// (`****`, `-`): a difference here means another log statement.
    Keyword,
}

/// One token of the masked message.
#[derive(Debug, Clone, Copy)]
struct Token {
    /// Range in `Scratch::text`.
    start: u32,
    end: u32,
    hash: u64,
    kind: Kind,
    /// A word with a `.` inside (`com.apple.xpc.launchd:`, `org.apache.Foo`).
    dotted: bool,
}

impl Token {
    fn tree_key(&self, config: &MinerConfig) -> u64 {
        match self.kind {
            Kind::Variable | Kind::Shaped => WILD_KEY,
            Kind::Word if self.dotted && config.dotted_names_vary => WILD_KEY,
            Kind::Word | Kind::Keyword => self.hash,
        }
    }
}

/// What the first pass learned about one whitespace-separated token of the message.
#[derive(Debug, Clone, Copy)]
struct RawToken {
    start: usize,
    end: usize,
    /// `Some((keep_prefix, keep_suffix))`: the token is a value; keep that many bytes at each
    /// end (brackets, `key=`, trailing punctuation) around the `<*>`.
    mask: Option<(usize, usize)>,
    kind: Kind,
    dotted: bool,
}

/// Per-message working memory, kept in the miner and reused.
#[derive(Debug, Default)]
struct Scratch {
    raw: Vec<RawToken>,
    /// The masked message, tokens back to back without separators.
    text: Vec<u8>,
    tokens: Vec<Token>,
}

impl Scratch {
    /// Splits and masks `message` into `tokens` (see the module documentation).
    fn mask(&mut self, message: &[u8], max_tokens: usize, quantity_shapes: bool) {
        self.text.clear();
        self.tokens.clear();
        self.split(message, max_tokens);
        let raw = std::mem::take(&mut self.raw);
        let mut i = 0;
        while i < raw.len() {
            let t = raw[i];
            let bytes = &message[t.start..t.end];
            let start = self.text.len();
            let after_quantity =
                |k: usize| quantity_shapes && i >= k && is_quantity(message, &raw[i - k]);
            // A unit that ends the message joins the quantity before it: `lifetime <1 sec` and
            // `lifetime 00:01` are one statement.
            if i + 1 == raw.len() && is_unit(bytes) && after_quantity(1) {
                break;
            }
            // A bracketed value right after a quantity, or after a quantity and its unit,
            // restates it (`1190 bytes (1.16 KB)`, `10.0.0.1 (host-10-0-0-1.example.net)`): it
            // is there or not depending on the value, so it is dropped; what follows its `)`
            // stays with the token before it.
            if bytes[0] == b'('
                && matches!(t.mask, Some((1, _)))
                && (after_quantity(1) || (after_quantity(2) && raw[i - 1].mask.is_none()))
                && let Some((last, tail)) = group_end(message, &raw[i..])
            {
                self.extend_last(tail);
                i += last + 1;
                continue;
            }
            i += 1;
            match t.mask {
                Some((prefix, suffix)) => {
                    self.push_value(start, &bytes[..prefix], &bytes[bytes.len() - suffix..]);
                }
                None => {
                    self.text.extend_from_slice(bytes);
                    self.push_token(start, t.kind, t.dotted);
                }
            }
        }
        self.raw = raw;
    }

    /// Appends `suffix` to the last token.
    fn extend_last(&mut self, suffix: &[u8]) {
        if suffix.is_empty() {
            return;
        }
        self.text.extend_from_slice(suffix);
        let end = self.text.len();
        if let Some(last) = self.tokens.last_mut() {
            last.end = end as u32;
            last.hash = hash_bytes(&self.text[last.start as usize..end]);
            if last.kind == Kind::Variable {
                last.kind = Kind::Shaped;
            }
        }
    }

    /// Appends `prefix<*>suffix` as a value token.
    fn push_value(&mut self, start: usize, prefix: &[u8], suffix: &[u8]) {
        if prefix.is_empty()
            && suffix.is_empty()
            && self.tokens.last().is_some_and(|t| t.kind == Kind::Variable)
        {
            // A run of values is one value: lists of ids, multi-token timestamps.
            return;
        }
        self.text.extend_from_slice(prefix);
        self.text.extend_from_slice(WILDCARD.as_bytes());
        self.text.extend_from_slice(suffix);
        let kind = if prefix.is_empty() && suffix.is_empty() {
            Kind::Variable
        } else {
            Kind::Shaped
        };
        self.push_token(start, kind, false);
    }

    fn push_token(&mut self, start: usize, kind: Kind, dotted: bool) {
        let end = self.text.len();
        self.tokens.push(Token {
            start: start as u32,
            end: end as u32,
            hash: hash_bytes(&self.text[start..end]),
            kind,
            dotted,
        });
    }

    /// Splits on ASCII whitespace and classifies each token. Past `max_tokens - 1` tokens, the
    /// rest of the message is one token.
    fn split(&mut self, message: &[u8], max_tokens: usize) {
        self.raw.clear();
        let n = message.len();
        let mut i = 0;
        loop {
            while i < n && is_space(message[i]) {
                i += 1;
            }
            if i >= n {
                break;
            }
            let start = i;
            // The classes of the token's bytes are gathered in the same pass that finds its
            // end: this scan is the one per-byte cost of the miner.
            let mut classes = 0;
            if self.raw.len() + 1 >= max_tokens {
                let mut end = n;
                while end > start && is_space(message[end - 1]) {
                    end -= 1;
                }
                for &b in &message[start..end] {
                    classes |= CLASS[b as usize];
                }
                self.raw.push(classify(message, start, end, classes));
                break;
            }
            while i < n {
                let class = CLASS[message[i] as usize];
                if class & SPACE != 0 {
                    break;
                }
                classes |= class;
                i += 1;
            }
            self.raw.push(classify(message, start, i, classes));
        }
    }
}

/// Classifies the token `message[start..end]`, whose bytes have the classes `classes` together.
/// Brackets and punctuation at its edges are not digits or letters, so for those the classes of
/// the token are those of its core; for the others they are a superset, used only as hints.
fn classify(message: &[u8], start: usize, end: usize, classes: u8) -> RawToken {
    let tok = &message[start..end];
    let (l, r) = edges(tok);
    let r = if tok.get(r).is_some_and(|b| matches!(b, b')' | b']' | b'}')) {
        closing_its_own(tok, l, r)
    } else {
        r
    };
    let core = &tok[l..r];
    let suffix = tok.len() - r;
    let mut t = RawToken {
        start,
        end,
        mask: None,
        kind: Kind::Word,
        dotted: false,
    };
    let value = |mut t: RawToken, prefix: usize| {
        t.mask = Some((prefix, suffix));
        t.kind = Kind::Variable;
        t
    };
    if tok.len() > MAX_TOKEN_BYTES {
        t.mask = Some((0, 0));
        t.kind = Kind::Variable;
        return t;
    }
    if classes & (DIGIT | LETTER) == 0 {
        // Punctuation only. Empty brackets or quotes (`()`, `''`) are an empty value; anything
        // else (`****`, `-`, `|`) is a separator that belongs to the statement.
        if is_empty_pair(tok) {
            t.mask = Some((1, tok.len() - 1));
            t.kind = Kind::Variable;
        } else {
            t.kind = Kind::Keyword;
        }
        return t;
    }
    // A token in matching quotes is a value (`'Active'`, `"/tmp/x"`). A quoted phrase of
    // several words is not caught here: it is compared word by word like any other text.
    if (tok[0] == b'\'' || tok[0] == b'"') && r < tok.len() && tok[r] == tok[0] && r > l {
        return value(t, l);
    }
    // A URL may hold `=` and `:`, but it is one value; so is a path with a query string.
    if classes & COLON != 0 && contains(core, b"://") {
        return value(t, l);
    }
    if classes & EQUALS != 0
        && is_path(core)
        && memchr::memchr(b'?', core).is_some_and(|q| memchr::memchr(b'=', core) > Some(q))
    {
        return value(t, l);
    }
    if classes & (EQUALS | COLON) != 0
        && let Some(value_at) = key_value_split(core)
    {
        return value(t, l + value_at);
    }
    if classes & DIGIT != 0 {
        return value(t, l);
    }
    if classes & PATHLIKE != 0
        && core.iter().any(|&b| CLASS[b as usize] & PATHLIKE != 0)
        && looks_variable(core)
    {
        return value(t, l);
    }
    t.dotted = core.len() > 2 && core[1..core.len() - 1].contains(&b'.');
    if is_caps(core) {
        t.kind = Kind::Keyword;
    }
    t
}

/// Lengths of the opening brackets and quotes, and the end of the token before its closing
/// brackets, quotes and punctuation: `(HWID=1973),` is `(` + `HWID=1973` + `),`.
fn edges(tok: &[u8]) -> (usize, usize) {
    let n = tok.len();
    let mut l = 0;
    // `<` before a digit is a comparison (`<1 sec`), part of the value.
    while l < n
        && CLASS[tok[l] as usize] & OPEN != 0
        && !(tok[l] == b'<' && l + 1 < n && tok[l + 1].is_ascii_digit())
    {
        l += 1;
    }
    let mut r = n;
    while r > l && CLASS[tok[r - 1] as usize] & CLOSE != 0 {
        r -= 1;
    }
    (l, r)
}

/// The end of the token's core, moved past the closing brackets that close a bracket opened
/// inside it: `LOCAL(0),` is `LOCAL(0)` + `,` and `ws=WorkSource{10113},` keeps its `}`, so a
/// value's own brackets are part of it and the text after it is the same whatever the value.
fn closing_its_own(tok: &[u8], l: usize, r: usize) -> usize {
    let mut open = [0u8; 3];
    for &b in &tok[l..r] {
        match b {
            b'(' => open[0] = open[0].saturating_add(1),
            b'[' => open[1] = open[1].saturating_add(1),
            b'{' => open[2] = open[2].saturating_add(1),
            b')' => open[0] = open[0].saturating_sub(1),
            b']' => open[1] = open[1].saturating_sub(1),
            b'}' => open[2] = open[2].saturating_sub(1),
            _ => {}
        }
    }
    let mut end = r;
    while end < tok.len() {
        let slot = match tok[end] {
            b')' => 0,
            b']' => 1,
            b'}' => 2,
            _ => break,
        };
        if open[slot] == 0 {
            break;
        }
        open[slot] -= 1;
        end += 1;
    }
    end
}

/// `()`, `[]`, `''`, `""`, maybe followed by punctuation (`(),`).
fn is_empty_pair(tok: &[u8]) -> bool {
    let closer = match tok.first() {
        Some(b'(') => b')',
        Some(b'[') => b']',
        Some(b'{') => b'}',
        Some(b'<') => b'>',
        Some(&q @ (b'\'' | b'"')) => q,
        _ => return false,
    };
    tok.get(1) == Some(&closer) && tok[2..].iter().all(|&b| CLASS[b as usize] & CLOSE != 0)
}

/// `needle` occurs in `v`. Tokens are short: a plain scan beats setting up a substring searcher.
fn contains(v: &[u8], needle: &[u8]) -> bool {
    v.windows(needle.len()).any(|w| w == needle)
}

/// A value: has a digit, or is a path, URL or e-mail address.
fn looks_variable(v: &[u8]) -> bool {
    v.iter().any(u8::is_ascii_digit) || is_path(v) || contains(v, b"://") || is_email(v)
}

/// A programming language's literal for a truth value or for nothing (`true`, `False`,
/// `null`, `nil`, `None`, `undefined`): after `key:` it is that key's value.
fn is_literal(v: &[u8]) -> bool {
    ["true", "false", "null", "nil", "none", "undefined"]
        .iter()
        .any(|literal| v.eq_ignore_ascii_case(literal.as_bytes()))
}

fn is_path(v: &[u8]) -> bool {
    (v.len() > 1 && v[0] == b'/' && v[1] != b'/')
        || v.starts_with(b"~/")
        || v.starts_with(b"./")
        || v.starts_with(b"../")
        || v.starts_with(b"\\\\")
        || contains(v, b":\\")
}

fn is_email(v: &[u8]) -> bool {
    match memchr::memchr(b'@', v) {
        Some(at) if at > 0 => {
            let host = &v[at + 1..];
            memchr::memchr(b'.', host).is_some_and(|dot| dot > 0 && dot + 1 < host.len())
        }
        _ => false,
    }
}

/// Where the value starts in `key=value` (always a value) or `key:value` (a value when it looks
/// like one: `sessionid:0x3f`, `path:/var/run`, not `Error:KeeperErrorCode`). A key is letters,
/// `_`, `.` and `-`, without digits, so that `host-41:8030` is a host and a port. The key of `=`
/// may follow other text (`LOGIN(uid=0)` keeps `LOGIN(uid=`). The key of `:` is the whole
/// prefix, has no `.`, and its value is not just digits, so that `proxy.example.com:5070` and
/// `wpad:80` are one value each (a host and a port).
fn key_value_split(core: &[u8]) -> Option<usize> {
    let is_key_byte = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'.' || b == b'-';
    let starts_key = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    if let Some(p) = memchr::memchr(b'=', core) {
        let mut k = p;
        while k > 0 && is_key_byte(core[k - 1]) {
            k -= 1;
        }
        while k < p && !starts_key(core[k]) {
            k += 1;
        }
        return (k < p && p + 1 < core.len()).then_some(p + 1);
    }
    let p = memchr::memchr(b':', core)?;
    let (key, value) = (&core[..p], &core[p + 1..]);
    let valid = !key.is_empty()
        && !value.is_empty()
        && starts_key(key[0])
        && key.iter().all(|&b| is_key_byte(b) && b != b'.')
        && !value.iter().all(u8::is_ascii_digit)
        && (looks_variable(value) || is_literal(value));
    valid.then_some(p + 1)
}

/// A plain number, as a quantity is written: digits with `.`, `,` or `:` between them, maybe
/// after a comparison or sign (`<1`, `-5`, `1.16`, `00:01`), with nothing kept around it.
fn is_quantity(message: &[u8], t: &RawToken) -> bool {
    if t.mask != Some((0, 0)) {
        return false;
    }
    let mut v = &message[t.start..t.end];
    while let [b'<' | b'>' | b'~' | b'+' | b'-' | b'=', rest @ ..] = v {
        v = rest;
    }
    v.first().is_some_and(u8::is_ascii_digit)
        && v.last().is_some_and(u8::is_ascii_digit)
        && v.iter()
            .all(|&b| b.is_ascii_digit() || b == b'.' || b == b',' || b == b':')
}

/// A unit by its shape: one to three letters (`s`, `ms`, `sec`, `KB`).
fn is_unit(tok: &[u8]) -> bool {
    (1..=3).contains(&tok.len()) && tok.iter().all(u8::is_ascii_alphabetic)
}

/// `raw[0]` opens a group with `(`: the index of the token that closes it with `)` (within
/// four tokens) and the punctuation after that `)`.
fn group_end<'a>(message: &'a [u8], raw: &[RawToken]) -> Option<(usize, &'a [u8])> {
    for (k, t) in raw.iter().enumerate().take(4) {
        let tok = &message[t.start..t.end];
        let opens = tok.iter().filter(|&&b| b == b'(').count();
        if let Some(p) = tok.iter().rposition(|&b| b == b')') {
            let tail = &tok[p + 1..];
            if opens <= 1 && tail.iter().all(|&b| CLASS[b as usize] & CLOSE != 0) {
                return Some((k, tail));
            }
            return None;
        }
        if k > 0 && opens > 0 {
            return None;
        }
    }
    None
}

/// At least two letters, none lowercase; digits, `_` and `-` allowed.
fn is_caps(v: &[u8]) -> bool {
    let mut letters = 0;
    for &b in v {
        match b {
            b'A'..=b'Z' => letters += 1,
            b'0'..=b'9' | b'_' | b'-' => {}
            _ => return false,
        }
    }
    letters >= 2
}

fn is_space(b: u8) -> bool {
    CLASS[b as usize] & SPACE != 0
}

const DIGIT: u8 = 1;
const LETTER: u8 = 2;
const OPEN: u8 = 4;
const CLOSE: u8 = 8;
const SPACE: u8 = 16;
const EQUALS: u8 = 32;
const COLON: u8 = 64;
/// Bytes without which a word cannot be a path, URL or e-mail address.
const PATHLIKE: u8 = 128;

/// Byte classes, so that classifying a token is one table lookup per byte. Bytes from 0x80 up
/// are letters: they are parts of UTF-8 words.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_digit() {
            t[b] |= DIGIT;
        }
        if c.is_ascii_alphabetic() || c >= 0x80 {
            t[b] |= LETTER;
        }
        b += 1;
    }
    let sets: [(&[u8], u8); 6] = [
        (b"([{<\"'", OPEN),
        (b")]}>\"',;:.!?", CLOSE),
        (b" \t\r\n\x0b\x0c", SPACE),
        (b"=", EQUALS),
        (b":", COLON),
        (b"/\\@.:", PATHLIKE),
    ];
    let mut s = 0;
    while s < sets.len() {
        let (bytes, class) = sets[s];
        let mut i = 0;
        while i < bytes.len() {
            t[bytes[i] as usize] |= class;
            i += 1;
        }
        s += 1;
    }
    t
};

// ---------------------------------------------------------------------------------------------
// Hashing

/// 64-bit hash of a token, eight bytes at a time. Tokens are compared by this hash alone: with
/// 64 bits a collision among the tokens of one leaf is vanishingly unlikely, and comparing two
/// `u64`s is what makes matching cheap.
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    // The last 1..=7 bytes without a copy: two overlapping 4-byte reads, or the bytes one by
    // one (the length is already in `h`, so overlap cannot make two tokens equal).
    let rest = chunks.remainder();
    let w = match rest.len() {
        0 => return mix(h),
        n @ 4.. => {
            let lo = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
            let hi =
                u32::from_le_bytes([rest[n - 4], rest[n - 3], rest[n - 2], rest[n - 1]]) as u64;
            lo | hi << 32
        }
        n => rest[0] as u64 | (rest[n / 2] as u64) << 8 | (rest[n - 1] as u64) << 16,
    };
    mix((h ^ w).wrapping_mul(K).rotate_left(29))
}

/// Final avalanche (SplitMix64's), so that every bit of a key depends on every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hasher for maps keyed by token hashes and cluster ids: the keys need no second hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // One multiply: keys that are already hashes stay as good, and sequential cluster ids
        // get varied high bits, which the table uses to tell entries apart.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The template a fresh miner gives one message: its masked form.
    fn masked(message: &str) -> String {
        TemplateMiner::default()
            .add(message.as_bytes())
            .template
            .to_string()
    }

    /// Feeds every message to one miner; returns the cluster id of each.
    fn cluster_ids(miner: &mut TemplateMiner, messages: &[&str]) -> Vec<u64> {
        messages
            .iter()
            .map(|m| miner.add(m.as_bytes()).cluster_id)
            .collect()
    }

    #[test]
    fn masks_values_and_keeps_the_text_around_them() {
        let cases = [
            // Numbers, block ids, IPv4 with and without ports, paths.
            (
                "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
                "Receiving block <*> src: <*> dest: <*>",
            ),
            (
                "Deleting block blk_1781953582842324563 file /mnt/hadoop/dfs/data/current/subdir5/blk_1781953582842324563",
                "Deleting block <*> file <*>",
            ),
            // key=value, an empty value, brackets kept around a value.
            (
                "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
                "authentication failure; logname= uid=<*> euid=<*> tty=<*> ruser= rhost=<*>",
            ),
            (
                "Received disconnect from 52.80.34.196: 11: Bye Bye [preauth]",
                "Received disconnect from <*>: <*>: Bye Bye [preauth]",
            ),
            (
                "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
                "reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [<*>] failed - POSSIBLE BREAK-IN ATTEMPT!",
            ),
            // Words are words, whatever they name (units, months): only shapes are values. A
            // bracketed value after a quantity restates it; a short word that ends the message
            // after a quantity is its unit; inside the message a unit is kept.
            (
                "proxy.cse.cuhk.edu.hk:5070 close, 1190 bytes (1.16 KB) sent, lifetime <1 sec",
                "<*> close, <*> bytes sent, lifetime <*>",
            ),
            (
                "proxy.cse.cuhk.edu.hk:5070 close, 2933 bytes (2.86 KB), lifetime 02:48",
                "<*> close, <*> bytes, lifetime <*>",
            ),
            (
                "Total memory: 64172 MB, used: 512.00 MB",
                "Total memory: <*> MB, used: <*>",
            ),
            (
                "CSI Store 4991456 (0x00000000004c29e0) initialized",
                "CSI Store <*> initialized",
            ),
            // A truth value or nothing after `key:` is that key's value.
            (
                "updateDimmedActivatedHideSensitive overlap:true",
                "updateDimmedActivatedHideSensitive overlap:<*>",
            ),
            (
                "Error:KeeperErrorCode = NoNode",
                "Error:KeeperErrorCode = NoNode",
            ),
            // A value's own brackets are part of it; a path's query string too.
            (
                "synchronized to LOCAL(0), stratum 10",
                "synchronized to <*>, stratum <*>",
            ),
            (
                "acquire lock=1, ws=WorkSource{10113}, uid=1000",
                "acquire lock=<*>, ws=<*>, uid=<*>",
            ),
            (
                "\"GET /v2/servers/detail?all_tenants=True&since=x HTTP/1.1\" status: 200",
                "\"GET <*> <*>\" status: <*>",
            ),
            // A bracketed group that is not a bare value, or not after a quantity, is kept.
            (
                "session opened for user 500 (uid=0)",
                "session opened for user <*> (uid=<*>)",
            ),
            ("took 5 s then 7 ms more", "took <*> s then <*> ms more"),
            // Empty brackets are a value; after a quantity (here an address), one that restates
            // it, as its host name does when it has one.
            ("connection to () at noon", "connection to (<*>) at noon"),
            (
                "connection from 222.33.90.199 () at Mon Jun 20 03:40:59 2005",
                "connection from <*> at Mon Jun <*>",
            ),
            (
                "connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Fri Jun 17 07:07:00 2005",
                "connection from <*> at Fri Jun <*>",
            ),
            // UUIDs, hex, IPv6, URLs, e-mail addresses, Windows paths, quoted tokens.
            (
                "request 3f2b6c1e-8a7d-4c2e-9b1f-2d3e4f5a6b7c failed with 0x800f080d",
                "request <*> failed with <*>",
            ),
            (
                "MDNS: IPV6 Addr: 2607:f140:6000:8:c6b3:1ff:fecd:467f",
                "MDNS: <*> Addr: <*>",
            ),
            (
                "fetching https://example.com/api/v1/items?page=2 for bob@example.org",
                "fetching <*> for <*>",
            ),
            ("Loaded C:\\Windows\\winsxs\\cbscore.dll", "Loaded <*>"),
            (
                "removing device node '/udev/vcsa2'",
                "removing device node '<*>'",
            ),
            (
                "Location icon should now be in state 'Active'",
                "Location icon should now be in state '<*>'",
            ),
            // `key:value` only when the value looks like one; host:port is one value.
            (
                "Got user-level KeeperException when processing sessionid:0x34ed93485090001 type:create",
                "Got user-level KeeperException when processing sessionid:<*> type:create",
            ),
            (
                "wpad:80 error : Could not connect",
                "<*> error : Could not connect",
            ),
            // A run of values is one value; a separator between values is kept.
            (
                "BLOCK* ask 10.251.126.5:50010 to delete blk_-9016567407076718172 blk_-8695715290502978219",
                "BLOCK* ask <*> to delete <*>",
            ),
            (
                "Fan speeds ( 3552 3534 3375 **** 3515 3479 )",
                "Fan speeds ( <*> **** <*> )",
            ),
            (
                "NIFF: node node-129 has detected an available network connection on network 10.128.0.0 via interface ee0",
                "NIFF: node <*> has detected an available network connection on network <*> via interface <*>",
            ),
        ];
        for (message, template) in cases {
            assert_eq!(masked(message), template, "{message}");
        }
    }

    #[test]
    fn one_statement_with_different_values_is_one_cluster() {
        let groups: [&[&str]; 6] = [
            &[
                "Failed password for invalid user admin from 203.0.113.7 port 51234 ssh2",
                "Failed password for invalid user oracle from 198.51.100.23 port 40022 ssh2",
                "Failed password for invalid user test from 192.0.2.200 port 6000 ssh2",
            ],
            &[
                "session opened for user cyrus by (uid=0)",
                "session opened for user news by (uid=0)",
                "session opened for user root by (uid=1000)",
            ],
            &[
                "ciod: Error loading /home/draeger/testQboxhang: invalid or missing program image, No such file or directory",
                "ciod: Error loading /bgl/apps/scaletest/allreduce.rts: invalid or missing program image, No such file or directory",
            ],
            &[
                "Established session 0x14ed93111f20027 with negotiated timeout 10000 for client /10.10.34.13:37177",
                "Established session 0x24ede63a01b003b with negotiated timeout 30000 for client /10.10.34.19:33425",
            ],
            &[
                "proxy.example.com:5070 close, 0 bytes sent, 0 bytes received, lifetime 00:01",
                "proxy.example.com:5070 close, 1190 bytes (1.16 KB) sent, 403 bytes received, lifetime <1 sec",
                "proxy.example.com:5070 close, 403 bytes sent, 11721005 bytes (11.1 MB) received, lifetime 02:48",
            ],
            &[
                "com.apple.icloud.fmfd.heartbeat: scheduler_evaluate_activity told me to run this job; however, but the start time isn't for 439034 seconds.  Ignoring.",
                "com.apple.CacheDelete.daily: scheduler_evaluate_activity told me to run this job; however, but the start time isn't for 1234 seconds.  Ignoring.",
            ],
        ];
        let mut miner = TemplateMiner::default();
        let mut seen = Vec::new();
        for group in groups {
            let ids = cluster_ids(&mut miner, group);
            assert!(ids.iter().all(|&id| id == ids[0]), "{group:?} gave {ids:?}");
            assert!(
                !seen.contains(&ids[0]),
                "{group:?} joined another group's cluster"
            );
            seen.push(ids[0]);
        }
        assert_eq!(
            miner.template(seen[0]).as_deref(),
            Some("Failed password for invalid user <*> from <*> port <*>")
        );
    }

    #[test]
    fn different_statements_are_different_clusters() {
        let pairs = [
            // A different state, error code or separator is another statement, however alike
            // the rest of the line.
            (
                "attempt_1445144423722_0020_m_000000_0 TaskAttempt Transitioned from NEW to UNASSIGNED",
                "attempt_1445144423722_0020_m_000000_0 TaskAttempt Transitioned from UNASSIGNED to ASSIGNED",
            ),
            (
                "Failed to internally open package. [HRESULT = 0x800f0805 - CBS_E_INVALID_PACKAGE]",
                "Failed to internally open package. [HRESULT = 0x800f0805 - CBS_E_MANIFEST_INVALID_ITEM]",
            ),
            (
                "Fan speeds ( 3552 3534 3375 **** 3515 3479 )",
                "Fan speeds ( 3552 3534 3375 4245 3515 3479 )",
            ),
            // Two different words in a row are different text.
            (
                "ciod: Error reading message prefix on CioStream socket to 172.16.96.116:41534, Link has been severed",
                "ciod: Error reading message prefix on CioStream socket to 172.16.96.116:52839, Connection reset by peer",
            ),
            // Different text around a value.
            (
                "session opened for user cyrus by (uid=0)",
                "session opened for user root by LOGIN(uid=0)",
            ),
            // Short messages must agree on every word.
            ("Link error", "Link ok"),
            ("boot (command 1911)", "wait (command 1975)"),
            // Mostly values: the values are no evidence, the one word differs.
            (
                "iar 003a90fc dear 00b360e8",
                "lr:00004ed0 cr:28244842 xer:20000002 ctr:00086000",
            ),
            ("[10.0.0.7] 8080 ready", "[10.0.0.9] 9090 stopped"),
        ];
        for (a, b) in pairs {
            let mut miner = TemplateMiner::default();
            let ids = cluster_ids(&mut miner, &[a, b]);
            assert_ne!(ids[0], ids[1], "{a:?} and {b:?} share a cluster");
        }
    }

    #[test]
    fn cluster_id_stays_while_the_template_generalises() {
        let mut miner = TemplateMiner::default();
        let first = miner.add(b"Invalid user webmaster from 173.234.31.186");
        assert!(first.is_new);
        assert_eq!(&*first.template, "Invalid user webmaster from <*>");
        let second = miner.add(b"Invalid user admin from 103.99.0.122");
        assert!(!second.is_new);
        assert_eq!(second.cluster_id, first.cluster_id);
        assert_eq!(&*second.template, "Invalid user <*> from <*>");
        assert_eq!(
            miner.template(first.cluster_id).as_deref(),
            Some("Invalid user <*> from <*>")
        );
        assert_eq!(miner.len(), 1);
    }

    #[test]
    fn any_bytes_are_accepted() {
        let mut miner = TemplateMiner::default();
        let odd: [&[u8]; 7] = [
            b"",
            b"   \t  ",
            b"\xff\xfe invalid \xc3 utf-8 \x80",
            b"\xff\xfe invalid \xc3 utf-8 \x80",
            b"(((((",
            b"=",
            b"a=",
        ];
        for m in odd {
            miner.add(m);
        }
        let r = miner.add(b"\xff\xfe invalid \xc3 utf-8 \x80");
        assert!(!r.is_new);
        assert!(r.template.contains('\u{fffd}'), "{}", r.template);
        // A huge token and a huge number of tokens are bounded.
        let long = vec![b'x'; 100_000];
        assert_eq!(&*miner.add(&long).template, "<*>");
        let mut brackets = vec![b'('; 100_000];
        brackets.push(b'1');
        assert_eq!(&*miner.add(&brackets).template, "<*>");
        assert_eq!(&*miner.add(&vec![b'*'; 100_000]).template, "<*>");
        let many = "word ".repeat(10_000);
        let r = miner.add(many.as_bytes());
        assert_eq!(
            r.template.split(' ').count(),
            MinerConfig::default().max_tokens
        );
        // So a template holds at most `max_tokens` tokens, each at most 256 bytes of the
        // message and `<*>`.
        let per_token = MAX_TOKEN_BYTES + WILDCARD.len();
        for cluster in miner.clusters.iter().flatten() {
            assert!(cluster.text.len() <= miner.config.max_tokens * per_token);
        }
    }

    /// xorshift64*: a fixed, dependency-free stream of pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn memory_stays_bounded_on_a_million_distinct_lines() {
        let config = MinerConfig {
            max_clusters: 5_000,
            ..MinerConfig::default()
        };
        let mut miner = TemplateMiner::new(config.clone());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut line = Vec::new();
        let mut ids_seen = 0u64;
        for _ in 0..1_000_000 {
            // Words of random letters (never masked), so nearly every line is a new template.
            line.clear();
            let words = 1 + rng.next() % 12;
            for w in 0..words {
                if w > 0 {
                    line.push(b' ');
                }
                let len = 1 + rng.next() % 8;
                for _ in 0..len {
                    line.push(b'a' + (rng.next() % 26) as u8);
                }
            }
            let r = miner.add(&line);
            ids_seen = ids_seen.max(r.cluster_id);
        }
        assert!(
            ids_seen > 100_000,
            "the lines should have made many clusters"
        );
        assert!(miner.len() <= config.max_clusters);
        let live_nodes = miner.nodes.len() - miner.free_nodes.len();
        // Every live node lies on the path of a live cluster: the root, a length node, and at
        // most `prefix_depth` nodes per cluster.
        assert!(live_nodes <= 1 + config.max_tokens + config.max_clusters * config.prefix_depth);
        for node in &miner.nodes {
            assert!(node.children.len() <= config.max_children.max(config.max_tokens) + 1);
            assert!(node.clusters.len() <= config.max_leaf_clusters);
        }
        assert_eq!(miner.slot_of.len(), miner.len());
        assert!(miner.clusters.len() <= config.max_clusters + 1);
    }
}
