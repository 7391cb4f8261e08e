//! The Internet-Draft of the push protocol and its wire test vectors (and the generator that writes them).
