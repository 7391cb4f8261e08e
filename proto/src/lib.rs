//! Wire formats shared by every subcast process: push protocol, Replicast, authentication. No I/O.
