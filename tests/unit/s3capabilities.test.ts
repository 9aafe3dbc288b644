import { refusesEncryption, refusesTagging, sendTagged, unknownCapabilities, type StoreFeatures } from '../../src/storage/s3/capabilities';

const s3err = (name: string, status: number, message: string): Error => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });

// Swift 2.30 s3api's answers, as captured (docs/s3-compatibility.md).
const swiftTagging = s3err('NotImplemented', 501, 'Object tagging is not supported.');
const swiftKms = s3err('NotImplemented', 501, 'Server-side encryption is not supported.');

describe('S3 refusals', () => {
  test('tagging and encryption refusals are told apart', () => {
    expect(refusesTagging(swiftTagging)).toBe(true);
    expect(refusesEncryption(swiftTagging)).toBe(false);
    expect(refusesEncryption(swiftKms)).toBe(true);
    expect(refusesTagging(swiftKms)).toBe(false);
    expect(refusesTagging(s3err('InvalidArgument', 400, 'The header x-amz-tagging is not supported'))).toBe(true);
    expect(refusesEncryption(s3err('InvalidArgument', 400, 'The encryption method specified is not supported'))).toBe(true);
  });

  test('failures are not refusals', () => {
    for (const err of [s3err('AccessDenied', 403, 'Access Denied'), s3err('InternalError', 500, 'tagging backend down'), s3err('SlowDown', 503, 'Please reduce your request rate.'), new Error('socket hang up')]) {
      expect(refusesTagging(err)).toBe(false);
      expect(refusesEncryption(err)).toBe(false);
    }
  });
});

describe('sendTagged', () => {
  const features = (): StoreFeatures & { refused: number } => {
    const f = { caps: unknownCapabilities(null), refused: 0, tagsRefused: () => {
      f.refused++;
      f.caps.tagging = false;
    } };
    return f;
  };

  test('a store that refuses tags: the write goes again without them at once, and later writes skip them', async () => {
    const f = features();
    const sent: Array<string | undefined> = [];
    const send = async (tagging: string | undefined): Promise<string> => {
      sent.push(tagging);
      if (tagging) throw swiftTagging;
      return 'ok';
    };
    expect(await sendTagged(f, 'retention-class=standard', send)).toBe('ok');
    expect(await sendTagged(f, 'retention-class=standard', send)).toBe('ok');
    expect(sent).toEqual(['retention-class=standard', undefined, undefined]);
    expect(f.refused).toBe(1);
  });

  test('other errors pass through unchanged, and encryption is never dropped', async () => {
    const f = features();
    await expect(sendTagged(f, 'a=b', async () => Promise.reject(swiftKms))).rejects.toBe(swiftKms);
    await expect(sendTagged(f, 'a=b', async () => Promise.reject(s3err('SlowDown', 503, 'slow')))).rejects.toMatchObject({ name: 'SlowDown' });
    expect(f.refused).toBe(0);
    expect(f.caps.tagging).toBeNull();
  });
});
