// Lock order of the metadata layer (the one authoritative statement):
//
//   FilesystemImpl::rename_mu_
//     -> directory inodes (an ancestor before its descendant, otherwise by
//        inode number)
//     -> non-directory inodes, by inode number
//     -> leaf mutexes, never held while taking another lock above:
//        InodeTable's mutex (inode objects), ialloc_mu_ (free-inode set),
//        lazy_times_mu_ (inodes with times only in DRAM),
//        FilesystemImpl::table_mu_ (DirIndex building)
//     -> Allocator mutex
//     -> Journal mutex
//        -> (inside prepare hooks) Inode::orphan_next, inode slots at home
//           and the staged superblock, which are touched only under the
//           journal mutex (the journal's home writes run under it too);
//           hooks may take
//           InodeTable's mutex (a leaf) and the allocator mutex (the allocator's own
//           bitmap hook).
//
// An operation holds the locks of every inode it changes across building AND
// committing its transaction, so the order of transactions in the log equals
// the order of the DRAM changes. Readers take inode locks shared; a read()
// holds the shared lock while the consumer uses the region pointers.
//
// The orphan list is edited only inside prepare hooks (journal mutex): an
// unlink that orphans X, or the final free of X, may have to rewrite the slot
// of the inode Y before X on the list; Y's DRAM fields may be mid-change by
// another thread holding Y's lock, so the hook follows the list through
// Inode::orphan_next and rewrites Y from Y's slot at home, which under the
// journal mutex is Y's last committed image, never from Y's DRAM fields.
#pragma once
