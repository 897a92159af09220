//! The subscription trie. STUB: the sublist helper writes this.
