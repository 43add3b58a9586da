# test_data_folder.py - the data folder is private: it holds every checkpoint's bytes in plain chunk
# files, behind none of the mount's permission checks. A new one is created mode 0700; an existing one
# open to other users is made private at mount (a message goes to the log); chunk files are
# readable by their owner only.
import os
import stat
import unittest

import pecfs_harness as h


def write_version(m, data):
    os.makedirs(m.path("run", "v1"))
    h.write_file(m.path("run", "v1", "f.bin"), data, fsync=True)


class DataFolderTest(unittest.TestCase):
    def test_new_data_folder_is_private(self):
        with h.Mount(mount=False) as m:
            os.rmdir(m.data)   # the harness made it; pecfs makes it here
            m.mount()
            write_version(m, h.random_bytes(1 << 20, 1))
            self.assertEqual(stat.S_IMODE(os.stat(m.data).st_mode), 0o700)

    def test_open_data_folder_is_made_private(self):
        with h.Mount(mount=False) as m:
            os.chmod(m.data, 0o755)
            m.mount()
            self.assertEqual(stat.S_IMODE(os.stat(m.data).st_mode), 0o700)
            write_version(m, b"x" * 4096)

    def test_chunk_files_are_owner_only(self):
        with h.Mount() as m:
            write_version(m, h.random_bytes(3 << 20, 2))
            files = h.chunk_files(m.data)
            self.assertTrue(files)
            for f in files.values():
                self.assertEqual(stat.S_IMODE(os.stat(f).st_mode) & 0o077, 0, f)
            for d in os.listdir(os.path.join(m.data, "chunks")):
                mode = stat.S_IMODE(os.stat(os.path.join(m.data, "chunks", d)).st_mode)
                self.assertEqual(mode & 0o077, 0, d)


if __name__ == "__main__":
    h.main()
