import type { Spool, SpooledMessage } from '../../gateway/spool/spool.js';

/** One message of a spool file, read the way a delivery reads it (and checked to be `messageId`). */
export async function spooledMessage(spool: Spool, fileId: string, at = 0, messageId = fileId): Promise<SpooledMessage> {
  const reader = await spool.reader(fileId);
  try {
    return await reader.entry(at, messageId);
  } finally {
    await reader.close();
  }
}
